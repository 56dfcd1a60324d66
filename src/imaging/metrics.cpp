#include "tumorlab/imaging/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tumorlab/core/error.h"
#include "tumorlab/imaging/box.h"
#include "tumorlab/imaging/components.h"
#include "tumorlab/imaging/crop.h"
#include "tumorlab/imaging/distance_detail.h"
#include "tumorlab/imaging/statistics.h"

namespace tumorlab::imaging {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_same_grid(const LabelMap& pred, const LabelMap& ref, const char* what) {
  const std::string diff = pred.geometry().difference(ref.geometry());
  if (!diff.empty()) {
    throw Error(ErrorCode::GeometryMismatch,
                std::string(what) + ": prediction and reference are on different grids: " + diff);
  }
}

// Both masks as 0/1 on the union bounding box of their foreground grown by one voxel (clipped to
// the image), plus the voxel counts over the whole image.
struct Pair {
  int64_t pred_voxels = 0, ref_voxels = 0, both_voxels = 0;
  Box box;                  // empty when both masks are empty
  Geometry geometry;        // of the box
  std::vector<uint8_t> p, r;  // on the box
};

Pair prepare(const LabelMap& pred, const LabelMap& ref, uint8_t label) {
  Pair out;
  const Size3& size = pred.geometry().size;
  const uint8_t* pv = pred.data();
  const uint8_t* rv = ref.data();
  auto fg = [label](uint8_t v) { return label == 0 ? v != 0 : v == label; };
  Box box{{size[0], size[1], size[2]}, {0, 0, 0}};
  bool any = false;
  int64_t idx = 0;
  for (int64_t k = 0; k < size[2]; ++k) {
    for (int64_t j = 0; j < size[1]; ++j) {
      int64_t first = -1, last = -1;
      for (int64_t i = 0; i < size[0]; ++i, ++idx) {
        const bool p = fg(pv[idx]), r = fg(rv[idx]);
        out.pred_voxels += p;
        out.ref_voxels += r;
        out.both_voxels += p && r;
        if (p || r) {
          if (first < 0) first = i;
          last = i;
        }
      }
      if (first >= 0) {
        any = true;
        box.begin[0] = std::min(box.begin[0], first);
        box.end[0] = std::max(box.end[0], last + 1);
        box.begin[1] = std::min(box.begin[1], j);
        box.end[1] = std::max(box.end[1], j + 1);
        box.begin[2] = std::min(box.begin[2], k);
        box.end[2] = std::max(box.end[2], k + 1);
      }
    }
  }
  if (!any) return out;
  out.box = grow(box, 1, size);
  out.geometry = cropped_geometry(pred.geometry(), out.box);
  const Size3 s = out.box.size();
  out.p.resize(static_cast<std::size_t>(s[0] * s[1] * s[2]));
  out.r.resize(out.p.size());
  std::size_t o = 0;
  for (int64_t k = 0; k < s[2]; ++k) {
    for (int64_t j = 0; j < s[1]; ++j) {
      const int64_t row = pred.index(out.box.begin[0], out.box.begin[1] + j, out.box.begin[2] + k);
      for (int64_t i = 0; i < s[0]; ++i, ++o) {
        out.p[o] = fg(pv[row + i]);
        out.r[o] = fg(rv[row + i]);
      }
    }
  }
  return out;
}

// Surface voxels (see metrics.h) of a 0/1 mask on a grid of `size`; outside the grid is background.
std::vector<uint8_t> surface(const std::vector<uint8_t>& m, const Size3& size) {
  std::vector<uint8_t> s(m.size(), 0);
  const int64_t sx = size[0], sy = size[1], sz = size[2];
  const bool two_d = sz == 1;
  const int64_t plane = sx * sy;
  int64_t idx = 0;
  for (int64_t k = 0; k < sz; ++k) {
    for (int64_t j = 0; j < sy; ++j) {
      for (int64_t i = 0; i < sx; ++i, ++idx) {
        if (!m[idx]) continue;
        const bool edge = i == 0 || i == sx - 1 || j == 0 || j == sy - 1 || (!two_d && (k == 0 || k == sz - 1));
        if (edge || !m[idx - 1] || !m[idx + 1] || !m[idx - sx] || !m[idx + sx] ||
            (!two_d && (!m[idx - plane] || !m[idx + plane]))) {
          s[idx] = 1;
        }
      }
    }
  }
  return s;
}

// Distances (mm) from each voxel of `from` (in scan order) to the nearest voxel of `to`.
std::vector<double> directed_distances(const std::vector<uint8_t>& from, const std::vector<uint8_t>& to,
                                       const Geometry& geometry) {
  std::vector<double> out;
  const std::size_t n = from.size();
  const std::size_t to_count = static_cast<std::size_t>(std::count(to.begin(), to.end(), uint8_t{1}));
  if (to_count == n) {  // `to` covers the grid: every voxel is at distance 0
    for (std::size_t i = 0; i < n; ++i) {
      if (from[i]) out.push_back(0.0);
    }
    return out;
  }
  std::vector<float> d(n);
  detail::maurer_signed_distance(to.data(), geometry, d.data());
  // Outside `to`, the distance to ITK's boundary of `to` equals the distance to `to` (the nearest
  // voxel of `to` has a face neighbour outside `to`); inside `to` the distance is 0.
  for (std::size_t i = 0; i < n; ++i) {
    if (from[i]) out.push_back(to[i] ? 0.0 : static_cast<double>(d[i]));
  }
  return out;
}

SurfaceDistances distances_of(const Pair& pair) {
  SurfaceDistances out;
  if (pair.pred_voxels == 0 || pair.ref_voxels == 0) return out;
  const Size3 size = pair.box.size();
  const std::vector<uint8_t> ps = surface(pair.p, size);
  const std::vector<uint8_t> rs = surface(pair.r, size);
  out.pred_to_ref_mm = directed_distances(ps, rs, pair.geometry);
  out.ref_to_pred_mm = directed_distances(rs, ps, pair.geometry);
  return out;
}

double hd95_of(const SurfaceDistances& d) {
  std::vector<double> a = d.pred_to_ref_mm, b = d.ref_to_pred_mm;
  return std::max(percentile(a, 95.0), percentile(b, 95.0));
}

}  // namespace

SurfaceDistances surface_distances_mm(const LabelMap& pred, const LabelMap& ref, uint8_t label) {
  check_same_grid(pred, ref, "surface distances");
  return distances_of(prepare(pred, ref, label));
}

double hausdorff95_mm(const LabelMap& pred, const LabelMap& ref, uint8_t label) {
  check_same_grid(pred, ref, "HD95");
  const Pair pair = prepare(pred, ref, label);
  if (pair.pred_voxels == 0 && pair.ref_voxels == 0) return 0.0;
  if (pair.pred_voxels == 0 || pair.ref_voxels == 0) return kNaN;
  return hd95_of(distances_of(pair));
}

SegmentationMetrics compute_metrics(const LabelMap& pred, const LabelMap& ref, const MetricOptions& options) {
  check_same_grid(pred, ref, "metrics");
  if (!(options.surface_tolerance_mm >= 0)) {
    throw Error(ErrorCode::BadArgument, "metrics: surface tolerance " + std::to_string(options.surface_tolerance_mm) +
                                            " mm, expected >= 0");
  }
  const Pair pair = prepare(pred, ref, options.label);
  const double voxel_ml = pred.geometry().voxel_volume_ml();
  SegmentationMetrics m;
  m.pred_voxels = pair.pred_voxels;
  m.ref_voxels = pair.ref_voxels;
  m.pred_volume_ml = static_cast<double>(pair.pred_voxels) * voxel_ml;
  m.ref_volume_ml = static_cast<double>(pair.ref_voxels) * voxel_ml;
  m.volume_diff_ml = m.pred_volume_ml - m.ref_volume_ml;

  const bool pred_empty = pair.pred_voxels == 0, ref_empty = pair.ref_voxels == 0;
  if (pred_empty && ref_empty) {
    m.dice = m.iou = m.precision = m.recall = m.surface_dice = m.lesion_f1 = 1.0;
    m.hd95_mm = m.assd_mm = 0.0;
    return m;
  }
  const double inter = static_cast<double>(pair.both_voxels);
  const double np = static_cast<double>(pair.pred_voxels), nr = static_cast<double>(pair.ref_voxels);
  m.dice = 2.0 * inter / (np + nr);
  m.iou = inter / (np + nr - inter);
  m.precision = pred_empty ? 1.0 : inter / np;
  m.recall = ref_empty ? 1.0 : inter / nr;

  if (pred_empty || ref_empty) {
    m.hd95_mm = m.assd_mm = kNaN;
    m.surface_dice = 0.0;
  } else {
    const SurfaceDistances d = distances_of(pair);
    m.hd95_mm = hd95_of(d);
    double sum = 0;
    int64_t within = 0;
    for (const auto* v : {&d.pred_to_ref_mm, &d.ref_to_pred_mm}) {
      for (double x : *v) {
        sum += x;
        within += x <= options.surface_tolerance_mm;
      }
    }
    const double count = static_cast<double>(d.pred_to_ref_mm.size() + d.ref_to_pred_mm.size());
    m.assd_mm = sum / count;
    m.surface_dice = static_cast<double>(within) / count;
  }

  // Lesions: components on the cropped grid (no component reaches beyond the union's box).
  LabelMap p(pair.geometry), r(pair.geometry);
  std::copy(pair.p.begin(), pair.p.end(), p.data());
  std::copy(pair.r.begin(), pair.r.end(), r.data());
  const Components pc = connected_components(p, Connectivity::Full);
  const Components rc = connected_components(r, Connectivity::Full);
  m.pred_lesions = pc.count();
  m.ref_lesions = rc.count();
  std::vector<char> pred_hits(pc.components.size() + 1, 0), ref_hits(rc.components.size() + 1, 0);
  const int32_t* pid = pc.ids.data<int32_t>();
  const int32_t* rid = rc.ids.data<int32_t>();
  for (std::size_t i = 0; i < pair.p.size(); ++i) {
    if (pid[i] && pair.r[i]) pred_hits[pid[i]] = 1;
    if (rid[i] && pair.p[i]) ref_hits[rid[i]] = 1;
  }
  for (const Component& c : rc.components) {
    if (ref_hits[c.id]) {
      ++m.tp_lesions;
    } else {
      ++m.fn_lesions;
      m.fn_volume_ml += c.volume_ml;
    }
  }
  for (const Component& c : pc.components) {
    if (!pred_hits[c.id]) {
      ++m.fp_lesions;
      m.fp_volume_ml += c.volume_ml;
    }
  }
  const double denom = 2.0 * m.tp_lesions + m.fp_lesions + m.fn_lesions;
  m.lesion_f1 = denom > 0 ? 2.0 * m.tp_lesions / denom : 1.0;
  return m;
}

}  // namespace tumorlab::imaging
