// Fuzz the pipeline config loader: environment substitution, YAML parsing, --set overrides and
// validation of every built-in node type's options. It must return a Status, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "sluice/builtin_nodes.h"
#include "sluice/config/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sluice::NodeRegistry* registry = [] {
    auto* r = new sluice::NodeRegistry();
    sluice::RegisterBuiltinNodes(r);
    return r;
  }();
  std::string text(reinterpret_cast<const char*>(data), size);
  sluice::LoadOptions options;
  options.env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "HOME") return std::string("/home/fuzz");
    return std::nullopt;
  };
  // A byte of the input picks an override, so the --set path is fuzzed too.
  if (size > 0 && data[0] % 4 == 0) options.overrides.push_back("nodes.src.rows=5");
  if (size > 0 && data[0] % 4 == 1) options.overrides.push_back("settings.engine=sequential");
  auto spec = sluice::LoadPipelineText(text, "fuzz.yaml", *registry, options);
  (void)spec;
  return 0;
}
