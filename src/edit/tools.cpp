#include "tumorlab/edit/tools.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <functional>
#include <string>

#include "tumorlab/imaging/distance.h"
#include "tumorlab/imaging/morphology.h"

namespace tumorlab::edit {
namespace {

std::string size_text(const Size3& s) {
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}

void require(bool ok, const std::string& message) {
  if (!ok) throw Error(ErrorCode::BadArgument, message);
}

void check_labels(const LabelMap& labels, const char* tool) {
  require(labels.voxel_count() > 0 && static_cast<int64_t>(labels.voxels().size()) == labels.voxel_count(),
          std::string(tool) + ": the label map is empty");
}

void check_image(const Volume& image, const LabelMap& labels, int channel, const char* tool) {
  check_labels(labels, tool);
  if (image.empty() || !image.geometry().same_grid(labels.geometry()))
    throw Error(ErrorCode::GeometryMismatch, std::string(tool) + ": the image (" + image.geometry().describe() +
                                                 ") and the label map (" + labels.geometry().describe() +
                                                 ") are not on the same grid");
  require(channel >= 0 && channel < image.channels(), std::string(tool) + ": channel " + std::to_string(channel) +
                                                          " out of range (the image has " +
                                                          std::to_string(image.channels()) + ")");
}

void check_axis(int axis, const char* tool, const char* field = "axis") {
  require(axis >= 0 && axis <= 2, std::string(tool) + ": " + field + " must be 0, 1 or 2, got " + std::to_string(axis));
}

bool inside(const Size3& s, int64_t i, int64_t j, int64_t k) {
  return i >= 0 && j >= 0 && k >= 0 && i < s[0] && j < s[1] && k < s[2];
}

// One channel of `image` as doubles, read through its real type.
class Intensity {
 public:
  Intensity(const Volume& image, int channel) {
    dispatch_pixel_type(image.pixel_type(), [&](auto t) {
      using T = decltype(t);
      const T* p = image.channel_data<T>(channel);
      get_ = [p](int64_t i) { return static_cast<double>(p[i]); };
    });
  }
  double operator()(int64_t i) const { return get_(i); }

 private:
  std::function<double(int64_t)> get_;
};

// The after-values of a box, starting as a copy of the label map; tools set voxels, finish()
// makes the delta.
class BoxEdit {
 public:
  BoxEdit(const LabelMap& labels, const Box& box) : labels_(labels), box_(box), size_(box.size()) {
    before_.resize(static_cast<std::size_t>(box.voxel_count()));
    std::size_t n = 0;
    const Size3& s = labels.geometry().size;
    for (int64_t k = box.begin[2]; k < box.end[2]; ++k)
      for (int64_t j = box.begin[1]; j < box.end[1]; ++j) {
        const uint8_t* row = labels.data() + box.begin[0] + s[0] * (j + s[1] * k);
        std::copy(row, row + size_[0], before_.begin() + static_cast<std::ptrdiff_t>(n));
        n += static_cast<std::size_t>(size_[0]);
      }
    after_ = before_;
  }
  std::size_t local(int64_t i, int64_t j, int64_t k) const {
    return static_cast<std::size_t>((i - box_.begin[0]) +
                                    size_[0] * ((j - box_.begin[1]) + size_[1] * (k - box_.begin[2])));
  }
  uint8_t current(int64_t i, int64_t j, int64_t k) const { return before_[local(i, j, k)]; }
  void set(int64_t i, int64_t j, int64_t k, uint8_t value) { after_[local(i, j, k)] = value; }
  LabelDelta finish(std::string name) const {
    return LabelDelta::from_box(labels_.geometry().size, box_, before_, after_, std::move(name));
  }

 private:
  const LabelMap& labels_;
  Box box_;
  Size3 size_;
  std::vector<uint8_t> before_, after_;
};

Box check_box(const Box& box, const Size3& size, const char* tool) {
  for (int a = 0; a < 3; ++a)
    require(box.begin[a] >= 0 && box.end[a] <= size[a] && box.begin[a] < box.end[a],
            std::string(tool) + ": box " + box.describe() + " is empty or not inside the " + size_text(size) + " grid");
  return box;
}

Box slice_box(const Size3& size, int axis, int64_t index) {
  Box b = imaging::full_box(size);
  b.begin[axis] = index;
  b.end[axis] = index + 1;
  return b;
}

// A 2D binary label map of slice `index` along `axis` (1 where labels == label); in-plane axes
// keep their order and spacing.
LabelMap extract_slice(const LabelMap& labels, int axis, int64_t index, uint8_t label) {
  const Geometry& g = labels.geometry();
  const int u = axis == 0 ? 1 : 0;
  const int v = axis == 2 ? 1 : 2;
  Geometry sg;
  sg.size = {g.size[u], g.size[v], 1};
  sg.spacing_mm = {g.spacing_mm[u], g.spacing_mm[v], 1.0};
  LabelMap out(sg);
  int64_t idx[3];
  idx[axis] = index;
  for (int64_t b = 0; b < sg.size[1]; ++b)
    for (int64_t a = 0; a < sg.size[0]; ++a) {
      idx[u] = a;
      idx[v] = b;
      out.at(a, b, 0) = labels.at(idx[0], idx[1], idx[2]) == label ? 1 : 0;
    }
  return out;
}

}  // namespace

// ---- Region grow -------------------------------------------------------------------------

LabelDelta region_grow(const Volume& image, const LabelMap& labels, const RegionGrowSettings& st) {
  const char* tool = "region grow";
  check_image(image, labels, st.channel, tool);
  const Size3& s = labels.geometry().size;
  require(inside(s, st.seed[0], st.seed[1], st.seed[2]),
          std::string(tool) + ": seed (" + std::to_string(st.seed[0]) + ", " + std::to_string(st.seed[1]) + ", " +
              std::to_string(st.seed[2]) + ") is outside the " + size_text(s) + " grid");
  require(std::isfinite(st.tolerance) && st.tolerance >= 0,
          std::string(tool) + ": tolerance must be a finite number >= 0");
  require(st.lower.has_value() == st.upper.has_value(), std::string(tool) + ": give both lower and upper, or neither");
  require(st.max_voxels >= 0, std::string(tool) + ": max_voxels must be >= 0");
  Box region = imaging::full_box(s);
  if (st.box) region = imaging::intersect(region, check_box(*st.box, s, tool));
  if (st.slice_axis) {
    check_axis(*st.slice_axis, tool, "slice_axis");
    region = imaging::intersect(region, slice_box(s, *st.slice_axis, st.seed[*st.slice_axis]));
  }
  require(region.contains(st.seed[0], st.seed[1], st.seed[2]),
          std::string(tool) + ": seed is outside the box " + (st.box ? st.box->describe() : std::string()));
  const Intensity value(image, st.channel);
  const double seed_value = value(labels.index(st.seed[0], st.seed[1], st.seed[2]));
  double lo = seed_value - st.tolerance, hi = seed_value + st.tolerance;
  if (st.lower) {
    lo = *st.lower;
    hi = *st.upper;
    require(std::isfinite(lo) && std::isfinite(hi) && lo <= hi,
            std::string(tool) + ": lower must be <= upper (both finite)");
  }
  BoxEdit edit(labels, region);
  auto accept = [&](double x) { return x >= lo && x <= hi; };
  if (!accept(seed_value)) return edit.finish("Region grow");

  std::vector<std::array<int64_t, 3>> offsets;
  for (int dk = -1; dk <= 1; ++dk)
    for (int dj = -1; dj <= 1; ++dj)
      for (int di = -1; di <= 1; ++di) {
        const int n = std::abs(di) + std::abs(dj) + std::abs(dk);
        if (n == 0 || (st.connectivity == Connectivity::Face && n > 1)) continue;
        offsets.push_back({di, dj, dk});
      }
  const Size3 rs = region.size();
  std::vector<uint8_t> visited(static_cast<std::size_t>(region.voxel_count()), 0);
  auto local = [&](int64_t i, int64_t j, int64_t k) {
    return static_cast<std::size_t>((i - region.begin[0]) +
                                    rs[0] * ((j - region.begin[1]) + rs[1] * (k - region.begin[2])));
  };
  std::deque<std::array<int64_t, 3>> queue;
  queue.push_back({st.seed[0], st.seed[1], st.seed[2]});
  visited[local(st.seed[0], st.seed[1], st.seed[2])] = 1;
  int64_t grown = 0;
  while (!queue.empty()) {
    const auto p = queue.front();
    queue.pop_front();
    if (st.draw_over.allows(edit.current(p[0], p[1], p[2]))) edit.set(p[0], p[1], p[2], st.label);
    if (st.max_voxels > 0 && ++grown >= st.max_voxels) break;
    for (const auto& o : offsets) {
      const int64_t i = p[0] + o[0], j = p[1] + o[1], k = p[2] + o[2];
      if (!region.contains(i, j, k)) continue;
      uint8_t& seen = visited[local(i, j, k)];
      if (seen) continue;
      seen = 1;
      if (accept(value(labels.index(i, j, k)))) queue.push_back({i, j, k});
    }
  }
  return edit.finish("Region grow");
}

// ---- Threshold in a box ------------------------------------------------------------------

LabelDelta threshold_box(const Volume& image, const LabelMap& labels, const ThresholdSettings& st) {
  const char* tool = "threshold";
  check_image(image, labels, st.channel, tool);
  const Size3& s = labels.geometry().size;
  Box region = check_box(st.box, s, tool);
  require(std::isfinite(st.lower) && std::isfinite(st.upper) && st.lower <= st.upper,
          std::string(tool) + ": lower must be <= upper (both finite)");
  if (st.slice) {
    check_axis(st.slice->axis, tool, "slice.axis");
    require(st.slice->index >= 0 && st.slice->index < s[st.slice->axis],
            std::string(tool) + ": slice " + std::to_string(st.slice->index) + " is outside the grid along axis " +
                std::to_string(st.slice->axis));
    region = imaging::intersect(region, slice_box(s, st.slice->axis, st.slice->index));
  }
  BoxEdit edit(labels, region);
  if (region.empty()) return edit.finish("Threshold");
  const Intensity value(image, st.channel);
  for (int64_t k = region.begin[2]; k < region.end[2]; ++k)
    for (int64_t j = region.begin[1]; j < region.end[1]; ++j)
      for (int64_t i = region.begin[0]; i < region.end[0]; ++i) {
        const double x = value(labels.index(i, j, k));
        if (x >= st.lower && x <= st.upper && st.draw_over.allows(edit.current(i, j, k))) edit.set(i, j, k, st.label);
      }
  return edit.finish("Threshold");
}

// ---- Fill holes --------------------------------------------------------------------------

LabelDelta fill_holes(const LabelMap& labels, const FillHolesSettings& st) {
  const char* tool = "fill holes";
  check_labels(labels, tool);
  require(st.label != 0, std::string(tool) + ": label must be 1..255");
  const Size3& s = labels.geometry().size;
  if (st.mode == FillMode::PerSlice2D && st.slice) {
    check_axis(st.axis, tool);
    require(*st.slice >= 0 && *st.slice < s[st.axis], std::string(tool) + ": slice " + std::to_string(*st.slice) +
                                                          " is outside the grid along axis " + std::to_string(st.axis));
    const LabelMap filled = imaging::fill_holes(extract_slice(labels, st.axis, *st.slice, st.label), 1);
    const Box region = slice_box(s, st.axis, *st.slice);
    BoxEdit edit(labels, region);
    const int u = st.axis == 0 ? 1 : 0, v = st.axis == 2 ? 1 : 2;
    int64_t idx[3];
    idx[st.axis] = *st.slice;
    for (int64_t b = 0; b < s[v]; ++b)
      for (int64_t a = 0; a < s[u]; ++a) {
        idx[u] = a;
        idx[v] = b;
        const uint8_t cur = edit.current(idx[0], idx[1], idx[2]);
        if (filled.at(a, b, 0) && cur != st.label && st.draw_over.allows(cur))
          edit.set(idx[0], idx[1], idx[2], st.label);
      }
    return edit.finish("Fill holes");
  }
  LabelMap filled;
  if (st.mode == FillMode::PerSlice2D) {
    check_axis(st.axis, tool);
    filled = imaging::fill_holes_slicewise(labels, st.axis, st.label);
  } else {
    filled = imaging::fill_holes(labels, st.label);
  }
  LabelMap after = labels;
  uint8_t* out = after.data();
  const uint8_t* f = filled.data();
  for (int64_t i = 0, n = after.voxel_count(); i < n; ++i)
    if (f[i] && out[i] != st.label && st.draw_over.allows(out[i])) out[i] = st.label;
  return LabelDelta::between(labels, after, "Fill holes");
}

// ---- Islands -----------------------------------------------------------------------------

LabelDelta remove_islands(const LabelMap& labels, const IslandSettings& st) {
  const char* tool = "remove islands";
  check_labels(labels, tool);
  if (st.keep_largest)
    return LabelDelta::between(labels, imaging::keep_largest_component(labels, st.connectivity, st.label),
                               "Keep largest");
  require(st.min_voxels >= 0, std::string(tool) + ": min_voxels must be >= 0");
  return LabelDelta::between(labels, imaging::remove_small_components(labels, st.min_voxels, st.connectivity, st.label),
                             "Remove islands");
}

// ---- Interpolation -----------------------------------------------------------------------

LabelDelta interpolate_slices(const LabelMap& labels, const InterpolateSettings& st) {
  const char* tool = "interpolate";
  check_labels(labels, tool);
  check_axis(st.axis, tool);
  require(st.label != 0, std::string(tool) + ": label must be 1..255");
  require(st.first.has_value() == st.last.has_value(), std::string(tool) + ": give both first and last, or neither");
  const Size3& s = labels.geometry().size;
  const int axis = st.axis;
  const int u = axis == 0 ? 1 : 0, v = axis == 2 ? 1 : 2;
  // Slices holding the label.
  std::vector<char> has(static_cast<std::size_t>(s[axis]), 0);
  for (int64_t k = 0; k < s[2]; ++k)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t i = 0; i < s[0]; ++i)
        if (labels.at(i, j, k) == st.label) has[static_cast<std::size_t>(axis == 0 ? i : axis == 1 ? j : k)] = 1;
  std::vector<std::pair<int64_t, int64_t>> gaps;
  if (st.first) {
    int64_t a = std::min(*st.first, *st.last), b = std::max(*st.first, *st.last);
    require(a >= 0 && b < s[axis], std::string(tool) + ": slices " + std::to_string(a) + " and " + std::to_string(b) +
                                       " must lie in 0.." + std::to_string(s[axis] - 1));
    require(has[static_cast<std::size_t>(a)] && has[static_cast<std::size_t>(b)],
            std::string(tool) + ": slice " + std::to_string(has[static_cast<std::size_t>(a)] ? b : a) +
                " holds no voxel of label " + std::to_string(st.label));
    if (b - a > 1) gaps.emplace_back(a, b);
  } else {
    int64_t prev = -1;
    for (int64_t x = 0; x < s[axis]; ++x) {
      if (!has[static_cast<std::size_t>(x)]) continue;
      if (prev >= 0 && x - prev > 1) gaps.emplace_back(prev, x);
      prev = x;
    }
  }
  if (gaps.empty()) return LabelDelta::between(labels, labels, "Interpolate");
  Box region{{s[0], s[1], s[2]}, {0, 0, 0}};
  for (const auto& [a, b] : gaps) {
    Box g = imaging::full_box(s);
    g.begin[axis] = a + 1;
    g.end[axis] = b;
    region = imaging::unite(region, g);
  }
  BoxEdit edit(labels, region);
  for (const auto& [a, b] : gaps) {
    const Volume da = imaging::signed_distance_mm(extract_slice(labels, axis, a, st.label), 1);
    const Volume db = imaging::signed_distance_mm(extract_slice(labels, axis, b, st.label), 1);
    const float* pa = da.data<float>();
    const float* pb = db.data<float>();
    for (int64_t x = a + 1; x < b; ++x) {
      const double t = static_cast<double>(x - a) / static_cast<double>(b - a);
      int64_t idx[3];
      idx[axis] = x;
      int64_t n = 0;
      for (int64_t q = 0; q < s[v]; ++q)
        for (int64_t p = 0; p < s[u]; ++p, ++n) {
          idx[u] = p;
          idx[v] = q;
          const double d = (1 - t) * static_cast<double>(pa[n]) + t * static_cast<double>(pb[n]);
          if (!(d <= 0)) continue;
          const uint8_t cur = edit.current(idx[0], idx[1], idx[2]);
          if (cur != st.label && st.draw_over.allows(cur)) edit.set(idx[0], idx[1], idx[2], st.label);
        }
    }
  }
  return edit.finish("Interpolate");
}

// ---- Brush -------------------------------------------------------------------------------

namespace {

// Voxels under a stroke, as a mask over the stroke's box.
struct StrokeMask {
  Box box;
  std::vector<uint8_t> mask;
};

StrokeMask stroke_mask(const LabelMap& labels, const BrushSettings& st, const char* tool) {
  check_labels(labels, tool);
  require(!st.points.empty(), std::string(tool) + ": the stroke has no points");
  require(std::isfinite(st.radius_mm) && st.radius_mm >= 0 && st.radius_mm <= 1000,
          std::string(tool) + ": radius_mm must be in 0..1000, got " + std::to_string(st.radius_mm));
  if (st.shape == BrushShape::Disc) check_axis(st.axis, tool);
  const Geometry& g = labels.geometry();
  const Size3& s = g.size;
  const Vec3& sp = g.spacing_mm;
  for (const IndexIJK& p : st.points)
    require(std::isfinite(p.i) && std::isfinite(p.j) && std::isfinite(p.k) && std::abs(p.i) < 1e7 &&
                std::abs(p.j) < 1e7 && std::abs(p.k) < 1e7,
            std::string(tool) + ": stroke points must be finite voxel indices");
  // Stamp centres along the polyline.
  const double step_mm = 0.5 * std::min({sp[0], sp[1], sp[2]});
  std::vector<std::array<double, 3>> stamps;
  stamps.push_back({st.points[0].i, st.points[0].j, st.points[0].k});
  for (std::size_t n = 1; n < st.points.size(); ++n) {
    const std::array<double, 3> p{st.points[n - 1].i, st.points[n - 1].j, st.points[n - 1].k};
    const std::array<double, 3> q{st.points[n].i, st.points[n].j, st.points[n].k};
    double len = 0;
    for (int a = 0; a < 3; ++a) len += ((q[a] - p[a]) * sp[a]) * ((q[a] - p[a]) * sp[a]);
    len = std::sqrt(len);
    const auto steps = static_cast<int64_t>(std::max(1.0, std::ceil(len / step_mm)));
    require(stamps.size() + static_cast<std::size_t>(steps) < 2'000'000,
            std::string(tool) + ": the stroke is too long");
    for (int64_t m = 1; m <= steps; ++m) {
      const double t = static_cast<double>(m) / static_cast<double>(steps);
      stamps.push_back({p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]), p[2] + t * (q[2] - p[2])});
    }
  }
  const double r = st.radius_mm;
  const bool disc = st.shape == BrushShape::Disc;
  // Voxel range of a stamp, clipped to the grid.
  auto stamp_box = [&](const std::array<double, 3>& c) {
    Box b;
    for (int a = 0; a < 3; ++a) {
      int64_t lo, hi;
      if (disc && a == st.axis) {
        lo = hi = static_cast<int64_t>(std::llround(c[a]));
      } else {
        lo = std::min(static_cast<int64_t>(std::ceil(c[a] - r / sp[a] - 1e-9)),
                      static_cast<int64_t>(std::llround(c[a])));
        hi = std::max(static_cast<int64_t>(std::floor(c[a] + r / sp[a] + 1e-9)),
                      static_cast<int64_t>(std::llround(c[a])));
      }
      b.begin[a] = std::max<int64_t>(lo, 0);
      b.end[a] = std::min<int64_t>(hi + 1, s[a]);
    }
    return b;
  };
  StrokeMask out;
  out.box = Box{{s[0], s[1], s[2]}, {0, 0, 0}};
  for (const auto& c : stamps) out.box = imaging::unite(out.box, stamp_box(c));
  if (out.box.empty()) {
    out.box = Box{};
    return out;
  }
  const Size3 bs = out.box.size();
  out.mask.assign(static_cast<std::size_t>(out.box.voxel_count()), 0);
  const double r2 = r * r * (1 + 1e-9) + 1e-12;
  for (const auto& c : stamps) {
    const Box b = stamp_box(c);
    if (b.empty()) continue;
    const int64_t ni = std::llround(c[0]), nj = std::llround(c[1]), nk = std::llround(c[2]);
    for (int64_t k = b.begin[2]; k < b.end[2]; ++k)
      for (int64_t j = b.begin[1]; j < b.end[1]; ++j)
        for (int64_t i = b.begin[0]; i < b.end[0]; ++i) {
          const double d[3] = {(i - c[0]) * sp[0], (j - c[1]) * sp[1], (k - c[2]) * sp[2]};
          double d2 = 0;
          for (int a = 0; a < 3; ++a)
            if (!(disc && a == st.axis)) d2 += d[a] * d[a];
          const bool nearest = i == ni && j == nj && k == nk;
          if (d2 <= r2 || nearest)
            out.mask[static_cast<std::size_t>((i - out.box.begin[0]) +
                                              bs[0] * ((j - out.box.begin[1]) + bs[1] * (k - out.box.begin[2])))] = 1;
        }
  }
  return out;
}

template <class Paint>
LabelDelta paint_stroke(const LabelMap& labels, const StrokeMask& m, const char* name, Paint&& paint) {
  BoxEdit edit(labels, m.box);
  std::size_t n = 0;
  for (int64_t k = m.box.begin[2]; k < m.box.end[2]; ++k)
    for (int64_t j = m.box.begin[1]; j < m.box.end[1]; ++j)
      for (int64_t i = m.box.begin[0]; i < m.box.end[0]; ++i, ++n)
        if (m.mask[n]) paint(edit, i, j, k);
  return edit.finish(name);
}

}  // namespace

LabelDelta brush(const LabelMap& labels, const BrushSettings& st) {
  const StrokeMask m = stroke_mask(labels, st, "brush");
  return paint_stroke(labels, m, "Brush", [&](BoxEdit& e, int64_t i, int64_t j, int64_t k) {
    if (st.draw_over.allows(e.current(i, j, k))) e.set(i, j, k, st.label);
  });
}

LabelDelta erase(const LabelMap& labels, const BrushSettings& st) {
  const StrokeMask m = stroke_mask(labels, st, "eraser");
  return paint_stroke(labels, m, "Eraser", [&](BoxEdit& e, int64_t i, int64_t j, int64_t k) {
    if (st.draw_over.allows(e.current(i, j, k))) e.set(i, j, k, 0);
  });
}

LabelDelta threshold_brush(const Volume& image, const LabelMap& labels, const BrushSettings& st,
                           const IntensityRange& range) {
  const char* tool = "threshold brush";
  check_image(image, labels, range.channel, tool);
  require(std::isfinite(range.lower) && std::isfinite(range.upper) && range.lower <= range.upper,
          std::string(tool) + ": lower must be <= upper (both finite)");
  const StrokeMask m = stroke_mask(labels, st, tool);
  const Intensity value(image, range.channel);
  return paint_stroke(labels, m, "Threshold brush", [&](BoxEdit& e, int64_t i, int64_t j, int64_t k) {
    const double x = value(labels.index(i, j, k));
    if (x >= range.lower && x <= range.upper && st.draw_over.allows(e.current(i, j, k))) e.set(i, j, k, st.label);
  });
}

}  // namespace tumorlab::edit
