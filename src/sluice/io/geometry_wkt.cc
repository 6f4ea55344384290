// Reading WKT and EWKT into EWKB.

#include <cctype>
#include <charconv>
#include <cstring>
#include <limits>

#include "sluice/io/geometry.h"
#include "sluice/io/geometry_internal.h"
#include "sluice/io/text_internal.h"

namespace sluice::io::geom {

namespace {

using internal::EwkbWriter;

constexpr int kMaxDepth = 32;

// A recursive-descent WKT parser writing EWKB as it goes.
class WktParser {
 public:
  WktParser(std::string_view text, std::string* out) : s_(text), w_(out) {}

  Status Parse(int32_t srid) {
    SkipSpace();
    if (MatchWordCi("SRID")) {
      SkipSpace();
      if (!Eat('=')) return Error("expected '=' after SRID");
      SkipSpace();
      int64_t v = 0;
      const char* b = s_.data() + pos_;
      auto [p, ec] = std::from_chars(b, s_.data() + s_.size(), v);
      if (ec != std::errc() || v < 0 || v > INT32_MAX) return Error("expected an SRID number");
      pos_ += static_cast<size_t>(p - b);
      srid = static_cast<int32_t>(v);
      SkipSpace();
      if (!Eat(';')) return Error("expected ';' after the SRID");
    }
    SLUICE_RETURN_NOT_OK(Geometry(0, srid, 0));
    SkipSpace();
    if (pos_ != s_.size()) return Error("unexpected text after the geometry");
    return Status::OK();
  }

 private:
  Status Error(std::string_view what) const {
    return Status::Invalid("WKT: {} at character {} (\"{}\")", what, pos_ + 1,
                           io::internal::Excerpt(s_.substr(std::min(pos_, s_.size()))));
  }
  void SkipSpace() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  std::string_view Word() {
    const size_t b = pos_;
    while (pos_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    return s_.substr(b, pos_ - b);
  }
  static bool EqualCi(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::toupper(static_cast<unsigned char>(a[i])) != b[i]) return false;
    }
    return true;
  }
  bool MatchWordCi(std::string_view word) {
    const size_t save = pos_;
    if (EqualCi(Word(), word)) return true;
    pos_ = save;
    return false;
  }
  // "EMPTY" next (consumed), else false with nothing consumed.
  bool Empty() {
    SkipSpace();
    return MatchWordCi("EMPTY");
  }

  // Reads one tagged geometry. `expect` (0: any) is the type a Multi* requires of its tagged
  // elements; `dims` the dimensions the enclosing geometry fixed (0: not yet).
  Status Geometry(int depth, int32_t srid, int parent_dims) {
    if (depth > kMaxDepth) return Error("collections nested too deep");
    SkipSpace();
    std::string_view word = Word();
    bool z = false, m = false;
    // The dimension may be glued to the name (POINTZ, POINTZM) or a separate word.
    auto strip = [&](std::string_view suffix) {
      if (word.size() > suffix.size() &&
          EqualCi(word.substr(word.size() - suffix.size()), suffix)) {
        word.remove_suffix(suffix.size());
        return true;
      }
      return false;
    };
    uint32_t type = TypeOf(word);
    if (type == 0 && strip("ZM")) {
      z = m = true;
    } else if (type == 0 && strip("Z")) {
      z = true;
    } else if (type == 0 && strip("M")) {
      m = true;
    }
    if (type == 0) type = TypeOf(word);
    if (type == 0) return Error(fmt::format("unknown geometry type '{}'", word));
    if (!z && !m) {
      SkipSpace();
      const size_t save = pos_;
      const std::string_view dim = Word();
      if (EqualCi(dim, "ZM")) {
        z = m = true;
      } else if (EqualCi(dim, "Z")) {
        z = true;
      } else if (EqualCi(dim, "M")) {
        m = true;
      } else {
        pos_ = save;
      }
    }
    const int tagged = (z || m) ? 2 + (z ? 1 : 0) + (m ? 1 : 0) : 0;
    if (tagged != 0) {
      // Inside a collection whose dimensions are known, a tag must agree (PostGIS refuses
      // mixed dimensions, and EWKB could not say it either).
      if (parent_dims != 0 && (tagged != parent_dims || z != z_ || m != m_)) {
        return Error("dimensions mixed inside a collection");
      }
      dims_ = tagged;
      z_ = z;
      m_ = m;
    } else {
      dims_ = parent_dims;  // 0 at the top: the first position decides
      if (parent_dims == 0) z_ = m_ = false;
    }
    const size_t header = w_.size();
    w_.Header(type, z, m, srid);
    SLUICE_RETURN_NOT_OK(Body(type, depth));
    // Without a tag, the first position fixed the dimensions: rewrite the header's flags.
    PatchFlags(header);
    return Status::OK();
  }

  static uint32_t TypeOf(std::string_view word) {
    static constexpr std::pair<std::string_view, uint32_t> kTypes[] = {
        {"POINT", kPoint},
        {"LINESTRING", kLineString},
        {"POLYGON", kPolygon},
        {"MULTIPOINT", kMultiPoint},
        {"MULTILINESTRING", kMultiLineString},
        {"MULTIPOLYGON", kMultiPolygon},
        {"GEOMETRYCOLLECTION", kGeometryCollection}};
    for (const auto& [name, type] : kTypes) {
      if (EqualCi(word, name)) return type;
    }
    return 0;
  }

  void PatchFlags(size_t header) {
    uint32_t flags = 0;
    if (dims_ == 4 || (dims_ == 3 && !m_)) flags |= 0x80000000u;
    if (dims_ == 4 || (dims_ == 3 && m_)) flags |= 0x40000000u;
    w_.OrType(header, flags);
  }

  Status Body(uint32_t type, int depth) {
    switch (type) {
      case kPoint:
        if (Empty()) return EmptyPoint();
        SkipSpace();
        if (!Eat('(')) return Error("expected '(' or EMPTY");
        SLUICE_RETURN_NOT_OK(Position());
        return Close();
      case kLineString: {
        uint32_t n;
        return Positions(&n, 2, "a line string");
      }
      case kPolygon:
        return Rings();
      default:
        break;
    }
    const size_t count = w_.CountPlaceholder();
    uint32_t n = 0;
    if (Empty()) return Status::OK();
    SkipSpace();
    if (!Eat('(')) return Error("expected '(' or EMPTY");
    do {
      SkipSpace();
      if (type == kGeometryCollection) {
        SLUICE_RETURN_NOT_OK(Geometry(depth + 1, 0, dims_));
      } else {
        const uint32_t element = type - 3;
        w_.Header(element, z_, m_, 0);
        const size_t header = w_.size() - 5;
        if (element == kPoint) {
          // MULTIPOINT ((1 2), (3 4)) and MULTIPOINT (1 2, 3 4) are both common.
          if (Empty()) {
            SLUICE_RETURN_NOT_OK(EmptyPoint());
          } else if (Eat('(')) {
            SLUICE_RETURN_NOT_OK(Position());
            SLUICE_RETURN_NOT_OK(Close());
          } else {
            SLUICE_RETURN_NOT_OK(Position());
          }
        } else if (element == kLineString) {
          uint32_t points;
          SLUICE_RETURN_NOT_OK(Positions(&points, 2, "a line string"));
        } else {
          SLUICE_RETURN_NOT_OK(Rings());
        }
        PatchFlags(header);
      }
      ++n;
      SkipSpace();
    } while (Eat(','));
    SLUICE_RETURN_NOT_OK(Close());
    w_.PatchCount(count, n);
    return Status::OK();
  }

  Status Close() {
    SkipSpace();
    if (!Eat(')')) return Error("expected ')'");
    return Status::OK();
  }

  Status EmptyPoint() {
    const int dims = dims_ == 0 ? 2 : dims_;
    if (dims_ == 0) dims_ = 2;
    for (int i = 0; i < dims; ++i) w_.F64(std::numeric_limits<double>::quiet_NaN());
    return Status::OK();
  }

  Status Rings() {
    const size_t count = w_.CountPlaceholder();
    uint32_t rings = 0;
    if (Empty()) return Status::OK();
    SkipSpace();
    if (!Eat('(')) return Error("expected '(' or EMPTY");
    do {
      const size_t first = w_.size() + 4;
      uint32_t n;
      SLUICE_RETURN_NOT_OK(Positions(&n, 4, "a polygon ring"));
      Status closed = internal::CheckRing(w_, first, n, dims_);
      if (!closed.ok()) return Error(closed.message());
      ++rings;
      SkipSpace();
    } while (Eat(','));
    SLUICE_RETURN_NOT_OK(Close());
    w_.PatchCount(count, rings);
    return Status::OK();
  }

  // "(x y, x y, ...)" or EMPTY, with at least `min` positions unless empty.
  Status Positions(uint32_t* n, uint32_t min, std::string_view what) {
    const size_t count = w_.CountPlaceholder();
    *n = 0;
    if (Empty()) return Status::OK();
    SkipSpace();
    if (!Eat('(')) return Error("expected '(' or EMPTY");
    do {
      SLUICE_RETURN_NOT_OK(Position());
      ++*n;
      SkipSpace();
    } while (Eat(','));
    SLUICE_RETURN_NOT_OK(Close());
    if (*n < min) return Error(fmt::format("{} needs {} or more positions, has {}", what, min, *n));
    w_.PatchCount(count, *n);
    return Status::OK();
  }

  // Two to four numbers; the first position of an untagged geometry fixes the dimensions.
  Status Position() {
    int k = 0;
    while (k < 4) {
      SkipSpace();
      const char* b = s_.data() + pos_;
      double v;
      auto [p, ec] = std::from_chars(b, s_.data() + s_.size(), v);
      if (ec != std::errc()) break;
      pos_ += static_cast<size_t>(p - b);
      w_.F64(v);
      ++k;
    }
    if (k < 2) return Error("expected a position (two or more numbers)");
    if (dims_ == 0) {
      dims_ = k;
      z_ = k >= 3 && !m_;
    }
    if (k != dims_)
      return Error(fmt::format("a position of {} numbers where {} are expected", k, dims_));
    return Status::OK();
  }

  std::string_view s_;
  size_t pos_ = 0;
  EwkbWriter w_;
  int dims_ = 0;  // coordinates per position; 0 until the first position or a tag says
  bool z_ = false;
  bool m_ = false;
};

}  // namespace

Status WktToEwkb(std::string_view wkt, int32_t srid, std::string* out) {
  const size_t size = out->size();
  Status st = WktParser(wkt, out).Parse(srid);
  // What the parser made is checked as any EWKB is (an empty element before a 3-D one leaves
  // the dimensions mixed, which PostGIS refuses too).
  if (st.ok()) st = InspectEwkb(std::string_view(*out).substr(size)).status().WithContext("WKT");
  if (!st.ok()) out->resize(size);
  return st;
}

bool LooksLikeHex(std::string_view text) {
  if (text.starts_with("\\x")) return true;
  return !text.empty() && std::isxdigit(static_cast<unsigned char>(text[0]));
}

bool LooksLikeGeometryText(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.size() < 5) return false;
  if (LooksLikeHex(text)) {
    // The smallest geometry, an empty collection, is 9 bytes; anything shorter is other hex.
    if (text.size() < 18 || text.size() % 2 != 0) return false;
  } else if (!std::isalpha(static_cast<unsigned char>(text.front()))) {
    return false;
  }
  thread_local std::string scratch;
  scratch.clear();
  return TextToEwkb(text, 0, &scratch).ok();
}

Status TextToEwkb(std::string_view text, int32_t srid, std::string* out) {
  if (!LooksLikeHex(text)) return WktToEwkb(text, srid, out);
  std::string bytes;
  if (!io::internal::ParseHex(text, &bytes)) {
    return Status::Invalid("expected hex EWKB or WKT, got \"{}\"", io::internal::Excerpt(text));
  }
  SLUICE_RETURN_NOT_OK(InspectEwkb(bytes).status());
  out->append(bytes);
  return Status::OK();
}

void AppendEwkbPoint(double x, double y, int32_t srid, std::string* out) {
  EwkbWriter w(out);
  w.Header(kPoint, false, false, srid);
  w.F64(x);
  w.F64(y);
}

}  // namespace sluice::io::geom
