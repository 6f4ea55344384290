#include "sluice/transforms/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sluice {

namespace {

constexpr double kGamma =
    (1 + QuantileSketch::kRelativeError) / (1 - QuantileSketch::kRelativeError);
const double kInvLogGamma = 1.0 / std::log(kGamma);

/// The bucket of a finite x > 0: the i with gamma^(i-1) < x <= gamma^i.
int32_t IndexOf(double x) { return static_cast<int32_t>(std::ceil(std::log(x) * kInvLogGamma)); }

/// The value that stands for bucket i: within kRelativeError of every value in it.
double ValueOf(int32_t i) { return 2.0 * std::pow(kGamma, i) / (kGamma + 1.0); }

}  // namespace

void QuantileSketch::AddTo(std::vector<Bucket>* store, int32_t index, uint32_t n) {
  auto it = std::lower_bound(store->begin(), store->end(), index,
                             [](const Bucket& b, int32_t i) { return b.first < i; });
  if (it != store->end() && it->first == index) {
    it->second += n;
  } else {
    store->insert(it, {index, n});
  }
}

void QuantileSketch::MergeInto(std::vector<Bucket>* store, const std::vector<Bucket>& other) {
  if (other.empty()) return;
  if (store->empty()) {
    store->assign(other.begin(), other.end());
    return;
  }
  if (other.size() <= 4) {  // the usual case: a slice saw a key a few times; no allocation
    for (const auto& [index, n] : other) AddTo(store, index, n);
    return;
  }
  std::vector<Bucket> merged;
  merged.reserve(store->size() + other.size());
  auto a = store->begin();
  auto b = other.begin();
  while (a != store->end() || b != other.end()) {
    if (b == other.end() || (a != store->end() && a->first < b->first)) {
      merged.push_back(*a++);
    } else if (a == store->end() || b->first < a->first) {
      merged.push_back(*b++);
    } else {
      merged.emplace_back(a->first, a->second + b->second);
      ++a;
      ++b;
    }
  }
  *store = std::move(merged);
}

void QuantileSketch::Add(double v) {
  ++count_;
  if (std::isnan(v)) {
    ++nans_;
  } else if (v == 0) {
    ++zeros_;
  } else if (std::isinf(v)) {
    ++(v > 0 ? pos_inf_ : neg_inf_);
  } else if (v > 0) {
    AddTo(&pos_, IndexOf(v), 1);
  } else {
    AddTo(&neg_, IndexOf(-v), 1);
  }
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  MergeInto(&pos_, other.pos_);
  MergeInto(&neg_, other.neg_);
  zeros_ += other.zeros_;
  neg_inf_ += other.neg_inf_;
  pos_inf_ += other.pos_inf_;
  nans_ += other.nans_;
  count_ += other.count_;
}

double QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the sample asked for, 0-based, in ascending order (NaN last): percentile_disc's.
  auto rank =
      std::max<int64_t>(0, static_cast<int64_t>(std::ceil(q * static_cast<double>(count_))) - 1);
  if (rank < neg_inf_) return -std::numeric_limits<double>::infinity();
  rank -= neg_inf_;
  for (auto it = neg_.rbegin(); it != neg_.rend(); ++it) {  // most negative first
    if (rank < it->second) return -ValueOf(it->first);
    rank -= it->second;
  }
  if (rank < zeros_) return 0.0;
  rank -= zeros_;
  for (const auto& [index, n] : pos_) {
    if (rank < n) return ValueOf(index);
    rank -= n;
  }
  if (rank < pos_inf_) return std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace sluice
