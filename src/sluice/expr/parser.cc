#include <cctype>
#include <charconv>
#include <limits>
#include <string>
#include <utility>

#include "sluice/expr/expr.h"

namespace sluice {

namespace {

enum class TokenKind : uint8_t {
  kEnd,
  kIdent,        // bare identifier or keyword
  kQuotedIdent,  // "name"
  kInt,
  kFloat,
  kDuration,
  kString,
  kSymbol,  // operator or punctuation; text holds it
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  size_t start = 0;
  size_t end = 0;
  std::string text;  // identifier, unescaped string or symbol
  int64_t int_value = 0;
  double float_value = 0;
};

bool IsIdentStart(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalpha(u) || c == '_' || u >= 0x80;
}
bool IsIdentChar(char c) { return IsIdentStart(c) || std::isdigit(static_cast<unsigned char>(c)); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Parse a duration such as "90d" or "1h30m" into µs, rejecting values that overflow int64.
bool ParseDuration(std::string_view text, int64_t* out) {
  int64_t total = 0;
  size_t i = 0;
  if (text.empty()) return false;
  while (i < text.size()) {
    int64_t n = 0;
    size_t digits = 0;
    while (i < text.size() && IsDigit(text[i])) {
      if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, text[i] - '0', &n)) {
        return false;
      }
      ++i;
      ++digits;
    }
    if (digits == 0) return false;
    size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    const std::string unit = Lower(text.substr(i, j - i));
    i = j;
    int64_t mult;
    if (unit == "us") {
      mult = 1;
    } else if (unit == "ms") {
      mult = 1000;
    } else if (unit == "s") {
      mult = 1'000'000;
    } else if (unit == "m" || unit == "min") {
      mult = 60'000'000;
    } else if (unit == "h") {
      mult = 3'600'000'000;
    } else if (unit == "d") {
      mult = 86'400'000'000;
    } else if (unit == "w") {
      mult = 7 * 86'400'000'000;
    } else {
      return false;
    }
    int64_t part;
    if (__builtin_mul_overflow(n, mult, &part) || __builtin_add_overflow(total, part, &total)) {
      return false;
    }
  }
  *out = total;
  return true;
}

std::string Printable(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) return fmt::format("byte 0x{:02x}", u);
  return fmt::format("character '{}'", c);
}

// Recursive-descent parser over a lexer that produces one token of lookahead.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<std::unique_ptr<Expr>> Parse() {
    SLUICE_RETURN_NOT_OK(Advance());
    if (tok_.kind == TokenKind::kEnd) return Error(tok_.start, "expected a value");
    SLUICE_ASSIGN_OR_RETURN(auto e, ParseOr());
    if (tok_.kind != TokenKind::kEnd) {
      return Error(tok_.start, fmt::format("unexpected {}", Describe(tok_)));
    }
    return e;
  }

 private:
  static constexpr int kMaxNesting = 100;

  Status Error(size_t at, std::string_view message) const {
    return Status::Invalid("at column {}: {}", at + 1, message);
  }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::kEnd:
        return "end of expression";
      case TokenKind::kString:
        return "string '" + t.text + "'";
      case TokenKind::kQuotedIdent:
        return "name \"" + t.text + "\"";
      default:
        return "'" + t.text + "'";
    }
  }

  bool IsSymbol(std::string_view s) const {
    return tok_.kind == TokenKind::kSymbol && tok_.text == s;
  }
  bool IsKeyword(std::string_view k) const {
    return tok_.kind == TokenKind::kIdent && EqualsIgnoreCase(tok_.text, k);
  }

  Status Advance() {
    prev_end_ = tok_.end;
    const size_t n = text_.size();
    while (pos_ < n && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
                        text_[pos_] == '\r')) {
      ++pos_;
    }
    tok_ = Token();
    tok_.start = pos_;
    if (pos_ >= n) {
      tok_.end = pos_;
      return Status::OK();
    }
    const char c = text_[pos_];
    if (IsDigit(c) || (c == '.' && pos_ + 1 < n && IsDigit(text_[pos_ + 1]))) {
      SLUICE_RETURN_NOT_OK(LexNumber());
    } else if (IsIdentStart(c)) {
      size_t e = pos_;
      while (e < n && IsIdentChar(text_[e])) ++e;
      tok_.kind = TokenKind::kIdent;
      tok_.text = std::string(text_.substr(pos_, e - pos_));
      pos_ = e;
    } else if (c == '\'' || c == '"') {
      SLUICE_RETURN_NOT_OK(LexQuoted(c));
    } else {
      SLUICE_RETURN_NOT_OK(LexSymbol());
    }
    tok_.end = pos_;
    return Status::OK();
  }

  Status LexNumber() {
    const size_t n = text_.size();
    size_t e = pos_;
    bool is_float = false;
    while (e < n && IsDigit(text_[e])) ++e;
    if (e < n && text_[e] == '.' && e + 1 < n && IsDigit(text_[e + 1])) {
      is_float = true;
      ++e;
      while (e < n && IsDigit(text_[e])) ++e;
    }
    if (e < n && (text_[e] == 'e' || text_[e] == 'E')) {
      size_t x = e + 1;
      if (x < n && (text_[x] == '+' || text_[x] == '-')) ++x;
      if (x < n && IsDigit(text_[x])) {
        is_float = true;
        e = x;
        while (e < n && IsDigit(text_[e])) ++e;
      }
    }
    if (e < n && IsIdentChar(text_[e])) {
      // A number glued to letters: a duration such as 90d or 1h30m.
      size_t d = e;
      while (d < n && IsIdentChar(text_[d])) ++d;
      const std::string_view word = text_.substr(pos_, d - pos_);
      if (is_float || !ParseDuration(word, &tok_.int_value)) {
        return Error(pos_, fmt::format("'{}' is not a number or a duration (durations look like "
                                       "500ms, 15s, 30m, 12h, 90d or 1h30m)",
                                       word));
      }
      tok_.kind = TokenKind::kDuration;
      tok_.text = std::string(word);
      pos_ = d;
      return Status::OK();
    }
    const std::string_view word = text_.substr(pos_, e - pos_);
    tok_.text = std::string(word);
    const char* first = word.data();
    const char* last = word.data() + word.size();
    if (is_float) {
      auto [ptr, ec] = std::from_chars(first, last, tok_.float_value);
      if (ec != std::errc() || ptr != last) {
        return Error(pos_, fmt::format("number '{}' is out of range", word));
      }
      tok_.kind = TokenKind::kFloat;
    } else {
      auto [ptr, ec] = std::from_chars(first, last, tok_.int_value);
      if (ec != std::errc() || ptr != last) {
        return Error(pos_, fmt::format("integer '{}' is out of range", word));
      }
      tok_.kind = TokenKind::kInt;
    }
    pos_ = e;
    return Status::OK();
  }

  Status LexQuoted(char quote) {
    const size_t n = text_.size();
    size_t i = pos_ + 1;
    std::string value;
    while (true) {
      if (i >= n) {
        return Error(pos_, quote == '\'' ? "unterminated string" : "unterminated quoted name");
      }
      if (text_[i] == quote) {
        if (i + 1 < n && text_[i + 1] == quote) {
          value.push_back(quote);
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      value.push_back(text_[i++]);
    }
    tok_.kind = quote == '\'' ? TokenKind::kString : TokenKind::kQuotedIdent;
    tok_.text = std::move(value);
    pos_ = i;
    return Status::OK();
  }

  Status LexSymbol() {
    static constexpr std::string_view kTwo[] = {"==", "!=", "<>", "<=", ">=", "&&", "||"};
    static constexpr std::string_view kOne = "()+-*/%=<>!,";
    const std::string_view rest = text_.substr(pos_);
    for (std::string_view s : kTwo) {
      if (rest.substr(0, 2) == s) {
        tok_.kind = TokenKind::kSymbol;
        tok_.text = std::string(s);
        pos_ += 2;
        return Status::OK();
      }
    }
    if (kOne.find(rest[0]) != std::string_view::npos) {
      tok_.kind = TokenKind::kSymbol;
      tok_.text = std::string(1, rest[0]);
      pos_ += 1;
      return Status::OK();
    }
    return Error(pos_, fmt::format("unexpected {}", Printable(rest[0])));
  }

  // Give `e` its source text (from `start` to the end of the last consumed token).
  void Finish(Expr* e, size_t start) const {
    e->position = static_cast<int>(start);
    e->text = std::string(text_.substr(start, prev_end_ > start ? prev_end_ - start : 0));
  }

  Result<std::unique_ptr<Expr>> MakeNode(Expr::Kind kind, Expr::Op op, size_t start,
                                         std::vector<std::unique_ptr<Expr>> args) const {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->op = op;
    int height = 0;
    for (const auto& a : args) height = std::max(height, a->height);
    e->height = height + 1;
    e->args = std::move(args);
    Finish(e.get(), start);
    if (e->height > kMaxExprHeight) {
      return Error(start,
                   fmt::format("expression is nested more than {} levels deep", kMaxExprHeight));
    }
    return e;
  }

  Result<std::unique_ptr<Expr>> MakeBinary(Expr::Op op, size_t start, std::unique_ptr<Expr> l,
                                           std::unique_ptr<Expr> r) const {
    std::vector<std::unique_ptr<Expr>> args;
    args.push_back(std::move(l));
    args.push_back(std::move(r));
    return MakeNode(Expr::Kind::kBinary, op, start, std::move(args));
  }

  Result<std::unique_ptr<Expr>> ParseOr() {
    const size_t start = tok_.start;
    SLUICE_ASSIGN_OR_RETURN(auto lhs, ParseAnd());
    while (IsKeyword("or") || IsSymbol("||")) {
      SLUICE_RETURN_NOT_OK(Advance());
      SLUICE_ASSIGN_OR_RETURN(auto rhs, ParseAnd());
      SLUICE_ASSIGN_OR_RETURN(lhs,
                              MakeBinary(Expr::Op::kOr, start, std::move(lhs), std::move(rhs)));
    }
    return lhs;
  }

  Result<std::unique_ptr<Expr>> ParseAnd() {
    const size_t start = tok_.start;
    SLUICE_ASSIGN_OR_RETURN(auto lhs, ParseNot());
    while (IsKeyword("and") || IsSymbol("&&")) {
      SLUICE_RETURN_NOT_OK(Advance());
      SLUICE_ASSIGN_OR_RETURN(auto rhs, ParseNot());
      SLUICE_ASSIGN_OR_RETURN(lhs,
                              MakeBinary(Expr::Op::kAnd, start, std::move(lhs), std::move(rhs)));
    }
    return lhs;
  }

  Result<std::unique_ptr<Expr>> ParseNot() {
    const size_t start = tok_.start;
    if (IsKeyword("not") || IsSymbol("!")) {
      if (++depth_ > kMaxNesting) return TooDeep();
      SLUICE_RETURN_NOT_OK(Advance());
      SLUICE_ASSIGN_OR_RETURN(auto operand, ParseNot());
      --depth_;
      std::vector<std::unique_ptr<Expr>> args;
      args.push_back(std::move(operand));
      return MakeNode(Expr::Kind::kUnary, Expr::Op::kNot, start, std::move(args));
    }
    return ParseComparison();
  }

  Status TooDeep() const {
    return Error(tok_.start,
                 fmt::format("expression is nested more than {} levels deep", kMaxNesting));
  }

  Result<std::unique_ptr<Expr>> ParseComparison() {
    const size_t start = tok_.start;
    SLUICE_ASSIGN_OR_RETURN(auto lhs, ParseAdditive());
    while (true) {
      Expr::Op op = Expr::Op::kNone;
      if (tok_.kind == TokenKind::kSymbol) {
        const std::string& s = tok_.text;
        if (s == "=" || s == "==")
          op = Expr::Op::kEq;
        else if (s == "!=" || s == "<>")
          op = Expr::Op::kNe;
        else if (s == "<")
          op = Expr::Op::kLt;
        else if (s == "<=")
          op = Expr::Op::kLe;
        else if (s == ">")
          op = Expr::Op::kGt;
        else if (s == ">=")
          op = Expr::Op::kGe;
      }
      if (op != Expr::Op::kNone) {
        SLUICE_RETURN_NOT_OK(Advance());
        SLUICE_ASSIGN_OR_RETURN(auto rhs, ParseAdditive());
        SLUICE_ASSIGN_OR_RETURN(lhs, MakeBinary(op, start, std::move(lhs), std::move(rhs)));
        continue;
      }
      if (IsKeyword("is")) {
        SLUICE_RETURN_NOT_OK(Advance());
        bool negated = false;
        if (IsKeyword("not")) {
          negated = true;
          SLUICE_RETURN_NOT_OK(Advance());
        }
        if (!IsKeyword("null")) {
          return Error(tok_.start, fmt::format("expected 'null' after '{}', got {}",
                                               negated ? "is not" : "is", Describe(tok_)));
        }
        SLUICE_RETURN_NOT_OK(Advance());
        std::vector<std::unique_ptr<Expr>> args;
        args.push_back(std::move(lhs));
        SLUICE_ASSIGN_OR_RETURN(
            lhs, MakeNode(Expr::Kind::kIsNull, Expr::Op::kNone, start, std::move(args)));
        lhs->negated = negated;
        continue;
      }
      if (IsKeyword("in") || IsKeyword("not")) {
        bool negated = false;
        if (IsKeyword("not")) {
          negated = true;
          SLUICE_RETURN_NOT_OK(Advance());
          if (!IsKeyword("in")) {
            return Error(tok_.start,
                         fmt::format("expected 'in' after 'not', got {}", Describe(tok_)));
          }
        }
        SLUICE_RETURN_NOT_OK(Advance());
        if (!IsSymbol("(")) {
          return Error(tok_.start, fmt::format("expected '(' after 'in', got {}", Describe(tok_)));
        }
        const size_t open = tok_.start;
        SLUICE_RETURN_NOT_OK(Advance());
        std::vector<std::unique_ptr<Expr>> args;
        args.push_back(std::move(lhs));
        SLUICE_RETURN_NOT_OK(ParseList(open, &args));
        SLUICE_ASSIGN_OR_RETURN(lhs,
                                MakeNode(Expr::Kind::kIn, Expr::Op::kNone, start, std::move(args)));
        lhs->negated = negated;
        continue;
      }
      return lhs;
    }
  }

  // Parse "a, b, c)" after an opening parenthesis at `open`, appending to `out`. An empty
  // list is allowed only when `allow_empty` (function calls).
  Status ParseList(size_t open, std::vector<std::unique_ptr<Expr>>* out, bool allow_empty = false) {
    if (++depth_ > kMaxNesting) return TooDeep();
    if (allow_empty && IsSymbol(")")) {
      --depth_;
      return Advance();
    }
    while (true) {
      SLUICE_ASSIGN_OR_RETURN(auto e, ParseOr());
      out->push_back(std::move(e));
      if (IsSymbol(",")) {
        SLUICE_RETURN_NOT_OK(Advance());
        continue;
      }
      if (IsSymbol(")")) break;
      return Error(tok_.start, fmt::format("expected ',' or ')' to close '(' at column {}, got {}",
                                           open + 1, Describe(tok_)));
    }
    --depth_;
    return Advance();
  }

  Result<std::unique_ptr<Expr>> ParseAdditive() {
    const size_t start = tok_.start;
    SLUICE_ASSIGN_OR_RETURN(auto lhs, ParseMultiplicative());
    while (IsSymbol("+") || IsSymbol("-")) {
      const Expr::Op op = tok_.text == "+" ? Expr::Op::kAdd : Expr::Op::kSub;
      SLUICE_RETURN_NOT_OK(Advance());
      SLUICE_ASSIGN_OR_RETURN(auto rhs, ParseMultiplicative());
      SLUICE_ASSIGN_OR_RETURN(lhs, MakeBinary(op, start, std::move(lhs), std::move(rhs)));
    }
    return lhs;
  }

  Result<std::unique_ptr<Expr>> ParseMultiplicative() {
    const size_t start = tok_.start;
    SLUICE_ASSIGN_OR_RETURN(auto lhs, ParseUnary());
    while (IsSymbol("*") || IsSymbol("/") || IsSymbol("%")) {
      const Expr::Op op = tok_.text == "*"   ? Expr::Op::kMul
                          : tok_.text == "/" ? Expr::Op::kDiv
                                             : Expr::Op::kMod;
      SLUICE_RETURN_NOT_OK(Advance());
      SLUICE_ASSIGN_OR_RETURN(auto rhs, ParseUnary());
      SLUICE_ASSIGN_OR_RETURN(lhs, MakeBinary(op, start, std::move(lhs), std::move(rhs)));
    }
    return lhs;
  }

  Result<std::unique_ptr<Expr>> ParseUnary() {
    const size_t start = tok_.start;
    if (IsSymbol("-") || IsSymbol("+")) {
      const bool minus = tok_.text == "-";
      if (++depth_ > kMaxNesting) return TooDeep();
      SLUICE_RETURN_NOT_OK(Advance());
      SLUICE_ASSIGN_OR_RETURN(auto operand, ParseUnary());
      --depth_;
      if (!minus) return operand;
      std::vector<std::unique_ptr<Expr>> args;
      args.push_back(std::move(operand));
      return MakeNode(Expr::Kind::kUnary, Expr::Op::kNeg, start, std::move(args));
    }
    return ParsePrimary();
  }

  Result<std::unique_ptr<Expr>> Literal(Expr::LiteralKind kind) {
    auto e = std::make_unique<Expr>();
    e->kind = Expr::Kind::kLiteral;
    e->literal_kind = kind;
    const size_t start = tok_.start;
    SLUICE_RETURN_NOT_OK(Advance());
    Finish(e.get(), start);
    return e;
  }

  Result<std::unique_ptr<Expr>> ParsePrimary() {
    const size_t start = tok_.start;
    switch (tok_.kind) {
      case TokenKind::kInt:
      case TokenKind::kDuration: {
        const int64_t v = tok_.int_value;
        SLUICE_ASSIGN_OR_RETURN(
            auto e, Literal(tok_.kind == TokenKind::kInt ? Expr::LiteralKind::kInt
                                                         : Expr::LiteralKind::kDuration));
        e->int_value = v;
        return e;
      }
      case TokenKind::kFloat: {
        const double v = tok_.float_value;
        SLUICE_ASSIGN_OR_RETURN(auto e, Literal(Expr::LiteralKind::kFloat));
        e->float_value = v;
        return e;
      }
      case TokenKind::kString: {
        std::string v = std::move(tok_.text);
        SLUICE_ASSIGN_OR_RETURN(auto e, Literal(Expr::LiteralKind::kString));
        e->string_value = std::move(v);
        return e;
      }
      case TokenKind::kQuotedIdent: {
        auto e = std::make_unique<Expr>();
        e->kind = Expr::Kind::kField;
        e->name = std::move(tok_.text);
        SLUICE_RETURN_NOT_OK(Advance());
        Finish(e.get(), start);
        return e;
      }
      case TokenKind::kIdent:
        return ParseIdentifier();
      case TokenKind::kSymbol:
        if (IsSymbol("(")) {
          if (++depth_ > kMaxNesting) return TooDeep();
          SLUICE_RETURN_NOT_OK(Advance());
          SLUICE_ASSIGN_OR_RETURN(auto inner, ParseOr());
          if (!IsSymbol(")")) {
            return Error(tok_.start, fmt::format("expected ')' to close '(' at column {}, got {}",
                                                 start + 1, Describe(tok_)));
          }
          --depth_;
          SLUICE_RETURN_NOT_OK(Advance());
          return inner;
        }
        return Error(tok_.start, fmt::format("expected a value, got {}", Describe(tok_)));
      case TokenKind::kEnd:
        return Error(tok_.start, "expected a value");
    }
    return Error(tok_.start, "expected a value");
  }

  Result<std::unique_ptr<Expr>> ParseIdentifier() {
    const size_t start = tok_.start;
    if (IsKeyword("true") || IsKeyword("false")) {
      const bool v = IsKeyword("true");
      SLUICE_ASSIGN_OR_RETURN(auto e, Literal(Expr::LiteralKind::kBool));
      e->bool_value = v;
      return e;
    }
    if (IsKeyword("null")) return Literal(Expr::LiteralKind::kNull);
    for (std::string_view k : {"and", "or", "not", "in", "is"}) {
      if (IsKeyword(k)) {
        return Error(start, fmt::format("expected a value, got '{}' (write \"{}\" for a field "
                                        "with that name)",
                                        tok_.text, tok_.text));
      }
    }
    std::string name = std::move(tok_.text);
    SLUICE_RETURN_NOT_OK(Advance());
    if (!IsSymbol("(")) {
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::kField;
      e->name = std::move(name);
      Finish(e.get(), start);
      return e;
    }
    const size_t open = tok_.start;
    SLUICE_RETURN_NOT_OK(Advance());
    std::vector<std::unique_ptr<Expr>> args;
    SLUICE_RETURN_NOT_OK(ParseList(open, &args, /*allow_empty=*/true));
    SLUICE_ASSIGN_OR_RETURN(auto e,
                            MakeNode(Expr::Kind::kCall, Expr::Op::kNone, start, std::move(args)));
    e->name = Lower(name);
    return e;
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t prev_end_ = 0;
  Token tok_;
  int depth_ = 0;
};

// Drop trailing whitespace (YAML block scalars end with a newline); leading whitespace stays so
// that the columns in messages match the quoted text.
std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<std::unique_ptr<Expr>> ParseExpr(std::string_view text) {
  Parser parser(text);
  auto result = parser.Parse();
  if (!result.ok()) return result.status().WithContext("expression '{}'", TrimRight(text));
  return result;
}

}  // namespace sluice
