#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace sluice {

/// Return `j` as JSON text (compact, or indented by `indent`). Strings that are not valid UTF-8
/// (they can come from any config file or data) get U+FFFD in place of the bad bytes instead of
/// making nlohmann::json throw: use this, not dump(), for anything a user controls.
template <typename Json>
std::string JsonText(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sluice
