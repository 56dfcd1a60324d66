#pragma once
// Small statistics helpers shared by normalisation and metrics.

#include <vector>

namespace tumorlab::imaging {

// q-th percentile (q in [0, 100]) with linear interpolation between order statistics, as
// numpy.percentile's default ("linear"): with the values sorted x[0] <= ... <= x[n-1],
// position p = q / 100 * (n - 1), result = x[floor(p)] + (p - floor(p)) * (x[floor(p)+1] - x[floor(p)]).
// NaN for an empty input. Reorders `values` (partial sort); pass a copy to keep the order.
// Throws Error(BadArgument) when q is outside [0, 100].
double percentile(std::vector<double>& values, double q);
double percentile(std::vector<float>& values, double q);

struct MeanStd {
  double mean = 0;
  double std = 0;  // population standard deviation (divides by n), like numpy.std's default
  long long count = 0;
};
MeanStd mean_std(const std::vector<float>& values);
MeanStd mean_std(const std::vector<double>& values);

}  // namespace tumorlab::imaging
