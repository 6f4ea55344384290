#include "sluice/config/loader.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "sluice/alerts/alerts.h"
#include "sluice/core/units.h"

namespace sluice {

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

namespace {

std::string Loc(const std::string& file, const YAML::Mark& mark) {
  if (mark.line < 0) return file + ": --set";
  return fmt::format("{}:{}:{}", file, mark.line + 1, mark.column + 1);
}

Status ErrorAt(const std::string& file, const YAML::Mark& mark, const std::string& message) {
  return Status(StatusCode::kConfigError, Loc(file, mark) + ": " + message);
}

std::string Hint(const std::string& word, const std::vector<std::string>& candidates) {
  std::string near = SuggestNearest(word, candidates);
  return near.empty() ? "" : " — did you mean '" + near + "'?";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

const char* NodeTypeWord(YAML::NodeType::value t) {
  switch (t) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "an undefined value";
  }
}

/// Convert a YAML tree to JSON: plain scalars become numbers, booleans or null when they look
/// like one; quoted scalars always stay strings.
OptionJson ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      OptionJson out = OptionJson::object();
      for (const auto& kv : node) out[kv.first.Scalar()] = ToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      OptionJson out = OptionJson::array();
      for (const auto& e : node) out.push_back(ToJson(e));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted
      if (s == "true" || s == "True" || s == "yes") return true;
      if (s == "false" || s == "False" || s == "no") return false;
      if (s == "null" || s == "~") return nullptr;
      char* end = nullptr;
      errno = 0;
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && *end == '\0' && errno == 0) return static_cast<int64_t>(i);
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && *end == '\0' && s.find_first_of("0123456789") != std::string::npos &&
          s.find_first_not_of("0123456789.eE+-") == std::string::npos) {
        return d;
      }
      return s;
    }
    default:
      return nullptr;
  }
}

Result<OptionJson> ConvertOption(const OptionSpec& spec, const YAML::Node& value,
                                 const std::string& file, const std::string& context,
                                 const std::string& path = "",
                                 std::map<std::string, std::string>* locations = nullptr);

/// Check the mapping `value` (a YAML null counts as empty) against the keys `spec.fields`
/// declares, converting each; record where each key was written under "path.key".
Result<OptionJson> ConvertRecord(const OptionSpec& spec, const YAML::Node& value,
                                 const std::string& file, const std::string& context,
                                 const std::string& path,
                                 std::map<std::string, std::string>* locations) {
  OptionJson out = OptionJson::object();
  std::vector<std::string> names;
  for (const auto& f : spec.fields) names.push_back(f.name);
  if (!value.IsNull()) {
    if (!value.IsMap()) {
      return ErrorAt(file, value.Mark(),
                     fmt::format("{}option '{}' expects a mapping with keys {}, got {}", context,
                                 path, JoinNames(names), NodeTypeWord(value.Type())));
    }
    for (const auto& kv : value) {
      const std::string key = kv.first.Scalar();
      const OptionSpec* field = nullptr;
      for (const auto& f : spec.fields) {
        if (f.name == key) field = &f;
      }
      if (field == nullptr) {
        return ErrorAt(file, kv.first.Mark(),
                       fmt::format("{}option '{}': unknown key '{}'{} (keys are: {})", context,
                                   path, key, Hint(key, names), JoinNames(names)));
      }
      if (out.contains(key)) {
        return ErrorAt(file, kv.first.Mark(),
                       fmt::format("{}option '{}': key '{}' is given twice", context, path, key));
      }
      const std::string sub = path + "." + key;
      if (locations != nullptr) (*locations)[sub] = Loc(file, kv.second.Mark());
      SLUICE_ASSIGN_OR_RETURN(out[key],
                              ConvertOption(*field, kv.second, file, context, sub, locations));
    }
  }
  for (const auto& f : spec.fields) {
    if (f.required && !out.contains(f.name)) {
      return ErrorAt(
          file, value.Mark(),
          fmt::format("{}option '{}' is missing '{}' ({})", context, path, f.name, f.doc));
    }
  }
  return out;
}

/// Check a mapping of user-chosen names to records of `spec.fields` (or, when the spec allows
/// it, a list of names) and return it as a mapping.
Result<OptionJson> ConvertNamedRecords(const OptionSpec& spec, const YAML::Node& value,
                                       const std::string& file, const std::string& context,
                                       const std::string& path,
                                       std::map<std::string, std::string>* locations) {
  OptionJson out = OptionJson::object();
  auto add = [&](const YAML::Node& name_node, const YAML::Node& body) -> Status {
    if (!name_node.IsScalar() || name_node.Scalar().empty()) {
      return ErrorAt(file, name_node.Mark(),
                     fmt::format("{}option '{}' expects names, got {}", context, path,
                                 NodeTypeWord(name_node.Type())));
    }
    const std::string name = name_node.Scalar();
    if (out.contains(name)) {
      return ErrorAt(file, name_node.Mark(),
                     fmt::format("{}option '{}': '{}' is given twice", context, path, name));
    }
    const std::string sub = path + "." + name;
    if (locations != nullptr) (*locations)[sub] = Loc(file, name_node.Mark());
    auto record = ConvertRecord(spec, body, file, context, sub, locations);
    if (!record.ok()) return record.status();
    out[name] = std::move(*record);
    return Status::OK();
  };
  if (value.IsMap()) {
    for (const auto& kv : value) SLUICE_RETURN_NOT_OK(add(kv.first, kv.second));
  } else if (value.IsSequence() && spec.names_as_list) {
    for (const auto& e : value) SLUICE_RETURN_NOT_OK(add(e, YAML::Node(YAML::NodeType::Null)));
  } else if (value.IsScalar() && spec.names_as_list) {
    SLUICE_RETURN_NOT_OK(add(value, YAML::Node(YAML::NodeType::Null)));
  } else {
    return ErrorAt(file, value.Mark(),
                   fmt::format("{}option '{}' expects {}, got {}", context, path,
                               spec.names_as_list ? "a list of names or a mapping of name -> "
                                                    "settings"
                                                  : "a mapping of name -> settings",
                               NodeTypeWord(value.Type())));
  }
  if (out.empty()) {
    return ErrorAt(file, value.Mark(), fmt::format("{}option '{}' names nothing", context, path));
  }
  return out;
}

/// Check `value` against `spec` and return its normalized JSON form. `path` names the option
/// in messages ("databases.main.pool_size"); nested keys' positions go to `locations`.
Result<OptionJson> ConvertOption(const OptionSpec& spec, const YAML::Node& value,
                                 const std::string& file, const std::string& context,
                                 const std::string& path,
                                 std::map<std::string, std::string>* locations) {
  const std::string& shown_name = path.empty() ? spec.name : path;
  auto wrong = [&](const std::string& got) {
    return ErrorAt(
        file, value.Mark(),
        fmt::format("{}option '{}' expects {}, got {}", context, shown_name,
                    spec.type == OptionType::kEnum ? "one of: " + JoinNames(spec.choices)
                                                   : std::string(OptionTypeName(spec.type)),
                    got));
  };
  const bool scalar = value.IsScalar();
  const std::string text = scalar ? value.Scalar() : "";
  const std::string shown = scalar ? "'" + text + "'" : NodeTypeWord(value.Type());
  switch (spec.type) {
    case OptionType::kString:
      // `key:` with nothing, as `${VAR:-}` leaves it, is the empty string.
      if (value.IsNull()) return OptionJson("");
      if (!scalar) return wrong(shown);
      return OptionJson(text);
    case OptionType::kExpr:
      if (!scalar) return wrong(shown);
      return OptionJson(text);
    case OptionType::kInt: {
      OptionJson j = scalar ? ToJson(value) : OptionJson();
      if (!j.is_number_integer()) return wrong(shown);
      return j;
    }
    case OptionType::kFloat: {
      OptionJson j = scalar ? ToJson(value) : OptionJson();
      if (!j.is_number()) return wrong(shown);
      return OptionJson(j.get<double>());
    }
    case OptionType::kBool: {
      OptionJson j = scalar ? ToJson(value) : OptionJson();
      if (!j.is_boolean()) return wrong(shown + " (use true or false)");
      return j;
    }
    case OptionType::kByteSize: {
      if (!scalar) return wrong(shown);
      auto r = ParseByteSize(text);
      if (!r.ok())
        return ErrorAt(file, value.Mark(),
                       context + "option '" + shown_name + "': " + r.status().message());
      return OptionJson(*r);
    }
    case OptionType::kDuration: {
      if (!scalar) return wrong(shown);
      OptionJson j = ToJson(value);
      if (j.is_number()) return OptionJson(static_cast<int64_t>(j.get<double>() * 1e6));
      auto r = ParseDurationMicros(text);
      if (!r.ok())
        return ErrorAt(file, value.Mark(),
                       context + "option '" + shown_name + "': " + r.status().message());
      return OptionJson(*r);
    }
    case OptionType::kStringList: {
      OptionJson out = OptionJson::array();
      if (scalar) {
        out.push_back(text);
        return out;
      }
      if (!value.IsSequence()) return wrong(shown);
      for (const auto& e : value) {
        if (!e.IsScalar())
          return ErrorAt(
              file, e.Mark(),
              fmt::format("{}option '{}' expects a list of strings", context, shown_name));
        out.push_back(e.Scalar());
      }
      return out;
    }
    case OptionType::kMap:
      if (spec.shape == MapShape::kRecord) {
        return ConvertRecord(spec, value, file, context, shown_name, locations);
      }
      if (spec.shape == MapShape::kNamedRecords) {
        return ConvertNamedRecords(spec, value, file, context, shown_name, locations);
      }
      if (!value.IsMap() && !value.IsSequence()) return wrong(shown);
      return ToJson(value);
    case OptionType::kEnum:
      if (!scalar) return wrong(shown);
      for (const auto& c : spec.choices) {
        if (c == text) return OptionJson(text);
      }
      return ErrorAt(
          file, value.Mark(),
          fmt::format("{}option '{}' must be one of: {}; got '{}'{}", context, shown_name,
                      JoinNames(spec.choices), text, Hint(text, spec.choices)));
  }
  return wrong(shown);
}

Status ApplyOverride(YAML::Node root, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::ConfigError("--set '{}': expected PATH=VALUE, e.g. nodes.src.rows=1000",
                               assignment);
  }
  std::vector<std::string> parts;
  std::stringstream path(assignment.substr(0, eq));
  for (std::string part; std::getline(path, part, '.');) {
    if (part.empty()) return Status::ConfigError("--set '{}': empty path segment", assignment);
    parts.push_back(part);
  }
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return Status::ConfigError("--set '{}': value is not valid YAML: {}", assignment, e.msg);
  }
  if (!root.IsMap())
    return Status::ConfigError("--set '{}': the file is not a mapping", assignment);
  // yaml-cpp nodes are handles: walk down by reassignment-free references.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (!next.IsDefined() || next.IsNull()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[parts[i]];
    }
    if (!next.IsMap()) {
      return Status::ConfigError("--set '{}': '{}' is not a mapping", assignment, parts[i]);
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
  return Status::OK();
}

const std::vector<std::string> kTopLevelKeys = {"pipeline", "settings", "nodes", "alerts"};
const std::vector<std::string> kSettingsKeys = {
    "engine", "max_parallel_nodes", "workers", "memory_limit", "history", "metrics_listen"};

}  // namespace

Result<std::string> SubstituteEnv(const std::string& text, const std::string& file,
                                  const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  int line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = i + 1;
      out.push_back(c);
      continue;
    }
    if (c == '$' && i + 2 < text.size() && text[i + 1] == '$' && text[i + 2] == '{') {
      out += "${";
      i += 2;
      continue;
    }
    if (c != '$' || i + 1 >= text.size() || text[i + 1] != '{') {
      out.push_back(c);
      continue;
    }
    const int col = static_cast<int>(i - line_start) + 1;
    const size_t close = text.find('}', i + 2);
    const size_t eol = text.find('\n', i);
    if (close == std::string::npos || (eol != std::string::npos && close > eol)) {
      return Status::ConfigError(
          "{}:{}:{}: unterminated '${{' (expected ${{NAME}} or "
          "${{NAME:-default}})",
          file, line, col);
    }
    const std::string body = text.substr(i + 2, close - i - 2);
    std::string name = body;
    std::optional<std::string> fallback;
    const size_t dash = body.find(":-");
    if (dash != std::string::npos) {
      name = body.substr(0, dash);
      fallback = body.substr(dash + 2);
    }
    bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char ch : name) {
      valid = valid && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
    }
    if (!valid) {
      return Status::ConfigError(
          "{}:{}:{}: '${{{}}}' is not a valid variable reference (names "
          "use letters, digits and _)",
          file, line, col, body);
    }
    std::optional<std::string> value = env(name);
    if (!value || (value->empty() && fallback)) value = fallback;
    if (!value) {
      return Status::ConfigError(
          "{}:{}:{}: environment variable '{}' is not set (export it, or "
          "write ${{{}:-default}})",
          file, line, col, name, name);
    }
    out += *value;
    i = close;
  }
  return out;
}

Result<PipelineSpec> LoadPipelineFile(const std::string& path, const NodeRegistry& registry,
                                      const LoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::ConfigError("{}: cannot read the pipeline file: {}", path, std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadPipelineText(ss.str(), path, registry, options);
}

namespace {

// The offset of 0-based line `line` in `text`, or npos.
size_t LineOffset(const std::string& text, int line) {
  size_t at = 0;
  for (int i = 0; i < line; ++i) {
    at = text.find('\n', at);
    if (at == std::string::npos) return at;
    ++at;
  }
  return at;
}

// Check the top-level section `spec.name` of `root` (absent: every default) and return its
// values with defaults filled in, and where each key was written.
Result<NodeOptions> LoadSection(const OptionSpec& spec, const YAML::Node& root,
                                const std::string& file) {
  const YAML::Node body = root[spec.name];
  std::map<std::string, std::string> nested;
  OptionJson values = OptionJson::object();
  std::string location = file;
  if (body && !body.IsNull()) {
    location = Loc(file, body.Mark());
    SLUICE_ASSIGN_OR_RETURN(values, ConvertRecord(spec, body, file, "", spec.name, &nested));
  }
  std::map<std::string, std::string> locations;
  for (auto& [path, loc] : nested) locations[path.substr(spec.name.size() + 1)] = loc;
  for (const auto& f : spec.fields) {
    if (values.contains(f.name) || f.default_value.empty()) continue;
    const bool text = f.type == OptionType::kString || f.type == OptionType::kEnum;
    auto j = ConvertOption(f, text ? YAML::Node(f.default_value) : YAML::Load(f.default_value),
                           file, "");
    if (!j.ok()) {
      return Status::Internal("section '{}': bad default for '{}': {}", spec.name, f.name,
                              j.status().message());
    }
    values[f.name] = std::move(*j);
  }
  return NodeOptions(spec.name, "", std::move(values), std::move(locations), location);
}

}  // namespace

Result<PipelineSpec> LoadPipelineText(const std::string& raw, const std::string& file,
                                      const NodeRegistry& registry, const LoadOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(std::string text, SubstituteEnv(raw, file, options.env));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    std::string hint;
    // `{a: out/x-{n}.jsonl}`: braces in a plain value inside a { } mapping end it early.
    const size_t line_start = e.mark.line >= 0 ? LineOffset(text, e.mark.line) : std::string::npos;
    if (e.msg.find("end of map flow") != std::string::npos && line_start != std::string::npos) {
      const std::string_view line =
          std::string_view(text).substr(line_start, text.find('\n', line_start) == std::string::npos
                                                        ? std::string::npos
                                                        : text.find('\n', line_start) - line_start);
      if (std::count(line.begin(), line.end(), '{') > 1) {
        hint =
            " (a value holding { } inside a { } mapping must be quoted, e.g. path: "
            "\"out/x-{n}.jsonl\")";
      }
    }
    return ErrorAt(file, e.mark, "YAML syntax error: " + e.msg + hint);
  } catch (const YAML::Exception& e) {
    return ErrorAt(file, e.mark, "cannot read YAML: " + e.msg);
  }
  if (!root.IsMap()) {
    return Status::ConfigError(
        "{}:1:1: expected a mapping with 'pipeline', 'settings' and "
        "'nodes', got {}",
        file, NodeTypeWord(root.Type()));
  }
  for (const auto& o : options.overrides) SLUICE_RETURN_NOT_OK(ApplyOverride(root, o));

  PipelineSpec spec;
  spec.file = file;
  std::vector<std::string> top_level = kTopLevelKeys;
  for (const auto& section : options.sections) top_level.push_back(section.name);
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    if (std::find(top_level.begin(), top_level.end(), key) == top_level.end()) {
      return ErrorAt(file, kv.first.Mark(),
                     fmt::format("unknown section '{}'{} (expected one of: {})", key,
                                 Hint(key, top_level), JoinNames(top_level)));
    }
  }
  for (const auto& section : options.sections) {
    SLUICE_ASSIGN_OR_RETURN(spec.sections[section.name], LoadSection(section, root, file));
  }
  if (root["pipeline"]) {
    if (!root["pipeline"].IsScalar()) {
      return ErrorAt(file, root["pipeline"].Mark(), "'pipeline' must be the pipeline's name");
    }
    spec.name = root["pipeline"].Scalar();
  } else {
    spec.name = file;
    const size_t slash = spec.name.find_last_of('/');
    if (slash != std::string::npos) spec.name = spec.name.substr(slash + 1);
    const size_t dot = spec.name.find('.');
    if (dot != std::string::npos) spec.name = spec.name.substr(0, dot);
  }

  if (YAML::Node settings = root["settings"]; settings && !settings.IsNull()) {
    if (!settings.IsMap()) return ErrorAt(file, settings.Mark(), "'settings' must be a mapping");
    for (const auto& kv : settings) {
      const std::string key = kv.first.Scalar();
      const YAML::Node& v = kv.second;
      const YAML::Mark mark = v.Mark();
      if (key == "engine") {
        OptionSpec s{"engine", OptionType::kEnum, "", "", false, {"parallel", "sequential"}};
        SLUICE_ASSIGN_OR_RETURN(auto j, ConvertOption(s, v, file, "settings: "));
        spec.settings.engine =
            j.get<std::string>() == "sequential" ? EngineKind::kSequential : EngineKind::kParallel;
      } else if (key == "max_parallel_nodes") {
        OptionSpec s{"max_parallel_nodes", OptionType::kInt, "", "", false, {}};
        SLUICE_ASSIGN_OR_RETURN(auto j, ConvertOption(s, v, file, "settings: "));
        if (j.get<int64_t>() < 0) return ErrorAt(file, mark, "max_parallel_nodes must be >= 0");
        spec.settings.max_parallel_nodes = static_cast<int>(j.get<int64_t>());
      } else if (key == "workers") {
        OptionSpec s{"workers", OptionType::kInt, "", "", false, {}};
        SLUICE_ASSIGN_OR_RETURN(auto j, ConvertOption(s, v, file, "settings: "));
        if (j.get<int64_t>() < 0 || j.get<int64_t>() > 1024) {
          return ErrorAt(file, mark,
                         "workers must be 0 (one per CPU this process may use) to 1024");
        }
        spec.settings.workers = static_cast<int>(j.get<int64_t>());
      } else if (key == "memory_limit") {
        OptionSpec s{"memory_limit", OptionType::kByteSize, "", "", false, {}};
        SLUICE_ASSIGN_OR_RETURN(auto j, ConvertOption(s, v, file, "settings: "));
        spec.settings.memory_limit = j.get<int64_t>();
      } else if (key == "history" || key == "metrics_listen") {
        if (!v.IsScalar()) return ErrorAt(file, mark, "'" + key + "' must be a string");
        (key == "history" ? spec.settings.history : spec.settings.metrics_listen) = v.Scalar();
      } else {
        return ErrorAt(file, kv.first.Mark(),
                       fmt::format("unknown setting '{}'{} (settings are: {})", key,
                                   Hint(key, kSettingsKeys), JoinNames(kSettingsKeys)));
      }
    }
  }

  if (YAML::Node alerts = root["alerts"]; alerts && !alerts.IsNull()) {
    if (!alerts.IsSequence()) {
      return ErrorAt(file, alerts.Mark(),
                     "'alerts' must be a list of {metric, above|below, for, node, webhook}");
    }
    spec.alerts = ToJson(alerts);
    auto rules = alerts::ParseAlertRules(spec.alerts, alerts::StandardAlertMetrics());
    if (!rules.ok()) {
      // "alerts[N].field: ..." -> the entry's position in the file.
      const std::string& msg = rules.status().message();
      size_t index = 0;
      YAML::Mark mark = alerts.Mark();
      if (std::sscanf(msg.c_str(), "alerts[%zu]", &index) == 1 && index < alerts.size()) {
        mark = alerts[index].Mark();
      }
      return ErrorAt(file, mark, msg);
    }
  }

  YAML::Node nodes = root["nodes"];
  if (!nodes || nodes.IsNull()) {
    return Status::ConfigError(
        "{}:1:1: the pipeline has no 'nodes' section; add at least one "
        "source and one sink",
        file);
  }
  if (!nodes.IsMap()) {
    return ErrorAt(file, nodes.Mark(), "'nodes' must be a mapping of node id to node");
  }
  const std::vector<std::string> type_names = registry.Names();

  for (const auto& kv : nodes) {
    NodeSpec n;
    n.id = kv.first.Scalar();
    n.location = Loc(file, kv.first.Mark());
    const YAML::Node& body = kv.second;
    if (!body.IsMap()) {
      return ErrorAt(file, body.Mark(),
                     fmt::format("node '{}' must be a mapping with at least 'type'", n.id));
    }
    const std::string ctx = fmt::format("node '{}': ", n.id);
    YAML::Node type = body["type"];
    if (!type || !(type.IsScalar() || type.IsNull())) {
      return ErrorAt(file, kv.first.Mark(),
                     ctx + "missing 'type' (see `sluice nodes` for the list)");
    }
    // `type: null` (the null sink) parses as a YAML null.
    n.type = type.IsNull() ? "null" : type.Scalar();
    const YAML::Node inputs = body["inputs"];
    const bool has_inputs =
        inputs && !inputs.IsNull() && !(inputs.IsSequence() && inputs.size() == 0);
    const NodeTypeInfo* info = registry.Resolve(n.type, has_inputs);
    if (info == nullptr) {
      return ErrorAt(file, type.Mark(),
                     fmt::format("{}unknown node type '{}'{}", ctx, n.type,
                                 Hint(n.type, type_names).empty() ? " (see `sluice nodes`)"
                                                                  : Hint(n.type, type_names)));
    }
    std::vector<std::string> known;
    for (const auto& o : CommonNodeOptions()) known.push_back(o.name);
    for (const auto& o : info->options) known.push_back(o.name);

    OptionJson values = OptionJson::object();
    std::map<std::string, std::string> locations;
    std::set<std::string> seen;
    for (const auto& opt : body) {
      const std::string key = opt.first.Scalar();
      if (!seen.insert(key).second) {
        return ErrorAt(file, opt.first.Mark(), ctx + "option '" + key + "' is given twice");
      }
      const OptionSpec* spec_for = nullptr;
      for (const auto& o : CommonNodeOptions()) {
        if (o.name == key) spec_for = &o;
      }
      // A type's own option of the same name as an engine-level one (the postgres sink's
      // partition_by: the table's partition column) is the type's.
      bool own = false;
      for (const auto& o : info->options) {
        if (o.name == key) {
          spec_for = &o;
          own = true;
        }
      }
      if (spec_for == nullptr) {
        return ErrorAt(file, opt.first.Mark(),
                       fmt::format("{}unknown option '{}' for type '{}'{}", ctx, key, n.type,
                                   Hint(key, known).empty() ? " (see `sluice nodes " + n.type + "`)"
                                                            : Hint(key, known)));
      }
      locations[key] = Loc(file, opt.second.Mark());
      if (key == "type") continue;  // validated above (it may be a YAML null)
      SLUICE_ASSIGN_OR_RETURN(OptionJson j,
                              ConvertOption(*spec_for, opt.second, file, ctx, key, &locations));
      if (own) {
        values[key] = std::move(j);
      } else if (key == "inputs") {
        for (const auto& e : j) {
          const std::string input = e.get<std::string>();
          if (std::find(n.inputs.begin(), n.inputs.end(), input) != n.inputs.end()) {
            return ErrorAt(file, opt.second.Mark(),
                           fmt::format("{}input '{}' is listed twice (each input delivers every "
                                       "row once; list it once)",
                                       ctx, input));
          }
          n.inputs.push_back(input);
        }
      } else if (key == "after") {
        for (const auto& e : j) n.after.push_back(e.get<std::string>());
      } else if (key == "parallelism") {
        if (j.get<int64_t>() < 1 || j.get<int64_t>() > 256) {
          return ErrorAt(file, opt.second.Mark(), ctx + "parallelism must be between 1 and 256");
        }
        n.parallelism = static_cast<int>(j.get<int64_t>());
      } else if (key == "ordered") {
        n.ordered = j.get<bool>();
      } else if (key == "partition_by") {
        n.partition_by = j.get<std::string>();
      } else if (key == "queue_batches") {
        if (j.get<int64_t>() < 1)
          return ErrorAt(file, opt.second.Mark(), ctx + "queue_batches must be >= 1");
        n.queue_batches = j.get<int64_t>();
      } else if (key == "queue_bytes") {
        n.queue_bytes = j.get<int64_t>();
      } else {
        values[key] = std::move(j);
      }
    }
    // Defaults and required options.
    for (const auto& o : info->options) {
      if (values.contains(o.name)) continue;
      if (o.required) {
        return ErrorAt(file, kv.first.Mark(),
                       fmt::format("{}missing required option '{}' ({})", ctx, o.name, o.doc));
      }
      if (o.default_value.empty()) continue;
      // Strings are taken as written (a default of "," is not YAML); the rest parse as YAML.
      YAML::Node d = (o.type == OptionType::kString || o.type == OptionType::kExpr ||
                      o.type == OptionType::kEnum)
                         ? YAML::Node(o.default_value)
                         : YAML::Load(o.default_value);
      auto j = ConvertOption(o, d, file, ctx);
      if (!j.ok()) {
        return Status::Internal("node type '{}': bad default for '{}': {}", n.type, o.name,
                                j.status().message());
      }
      values[o.name] = std::move(*j);
    }
    n.options = NodeOptions(n.id, n.type, std::move(values), std::move(locations), n.location);
    spec.nodes.push_back(std::move(n));
  }
  return spec;
}

}  // namespace sluice
