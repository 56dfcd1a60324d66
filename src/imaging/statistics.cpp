#include "tumorlab/imaging/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tumorlab/core/error.h"

namespace tumorlab::imaging {
namespace {

template <class T> double percentile_impl(std::vector<T>& v, double q) {
  if (!(q >= 0 && q <= 100)) {
    throw Error(ErrorCode::BadArgument, "percentile: q = " + std::to_string(q) + ", expected a value in [0, 100]");
  }
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double pos = q / 100.0 * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(lo);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
  const double a = static_cast<double>(v[lo]);
  if (frac == 0 || lo + 1 >= v.size()) return a;
  // The next order statistic is the smallest value after position lo.
  const double b = static_cast<double>(*std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end()));
  return a + frac * (b - a);
}

template <class T> MeanStd mean_std_impl(const std::vector<T>& v) {
  MeanStd r;
  r.count = static_cast<long long>(v.size());
  if (v.empty()) return r;
  double sum = 0;
  for (T x : v) sum += static_cast<double>(x);
  r.mean = sum / static_cast<double>(v.size());
  double ss = 0;
  for (T x : v) {
    const double d = static_cast<double>(x) - r.mean;
    ss += d * d;
  }
  r.std = std::sqrt(ss / static_cast<double>(v.size()));
  return r;
}

}  // namespace

double percentile(std::vector<double>& values, double q) { return percentile_impl(values, q); }
double percentile(std::vector<float>& values, double q) { return percentile_impl(values, q); }
MeanStd mean_std(const std::vector<float>& values) { return mean_std_impl(values); }
MeanStd mean_std(const std::vector<double>& values) { return mean_std_impl(values); }

}  // namespace tumorlab::imaging
