#include "tumorlab/imaging/crop.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "tumorlab/core/error.h"

namespace tumorlab::imaging {

std::string Box::describe() const {
  std::string s;
  for (int a = 0; a < 3; ++a) {
    if (a) s += "x";
    s += "[" + std::to_string(begin[a]) + "," + std::to_string(end[a]) + ")";
  }
  return s;
}

Box unite(const Box& a, const Box& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  Box r;
  for (int x = 0; x < 3; ++x) {
    r.begin[x] = std::min(a.begin[x], b.begin[x]);
    r.end[x] = std::max(a.end[x], b.end[x]);
  }
  return r;
}

Box intersect(const Box& a, const Box& b) {
  Box r;
  for (int x = 0; x < 3; ++x) {
    r.begin[x] = std::max(a.begin[x], b.begin[x]);
    r.end[x] = std::min(a.end[x], b.end[x]);
  }
  return r.empty() ? Box{} : r;
}

Box grow(const Box& box, const Size3& margin, const Size3& size) {
  if (box.empty()) return Box{};
  Box r;
  for (int a = 0; a < 3; ++a) {
    r.begin[a] = std::max<int64_t>(0, box.begin[a] - margin[a]);
    r.end[a] = std::min<int64_t>(size[a], box.end[a] + margin[a]);
  }
  return r.empty() ? Box{} : r;
}

Box grow(const Box& box, int64_t margin, const Size3& size) { return grow(box, Size3{margin, margin, margin}, size); }

namespace {

// Bounding box of voxels where pred(linear index) holds, scanning rows.
template <class Pred> Box box_where(const Size3& size, Pred&& pred) {
  Box b{{size[0], size[1], size[2]}, {0, 0, 0}};
  bool any = false;
  int64_t idx = 0;
  for (int64_t k = 0; k < size[2]; ++k) {
    for (int64_t j = 0; j < size[1]; ++j) {
      int64_t first = -1, last = -1;
      for (int64_t i = 0; i < size[0]; ++i, ++idx) {
        if (pred(idx)) {
          if (first < 0) first = i;
          last = i;
        }
      }
      if (first >= 0) {
        any = true;
        b.begin[0] = std::min(b.begin[0], first);
        b.end[0] = std::max(b.end[0], last + 1);
        b.begin[1] = std::min(b.begin[1], j);
        b.end[1] = std::max(b.end[1], j + 1);
        b.begin[2] = std::min(b.begin[2], k);
        b.end[2] = std::max(b.end[2], k + 1);
      }
    }
  }
  return any ? b : Box{};
}

void check_box(const Box& box, const Size3& size, const char* what) {
  if (box.empty()) throw Error(ErrorCode::BadArgument, std::string(what) + ": box " + box.describe() + " is empty");
  for (int a = 0; a < 3; ++a) {
    if (box.begin[a] < 0 || box.end[a] > size[a]) {
      throw Error(ErrorCode::BadArgument, std::string(what) + ": box " + box.describe() + " is not inside the " +
                                              std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" +
                                              std::to_string(size[2]) + " grid");
    }
  }
}

// Copies a box of `src` (grid src_size) into `dst` (grid dst_size) at dst_begin, element size `bytes`.
void copy_box(const unsigned char* src, const Size3& src_size, const Size3& src_begin, unsigned char* dst,
              const Size3& dst_size, const Size3& dst_begin, const Size3& extent, std::size_t bytes) {
  const std::size_t row = static_cast<std::size_t>(extent[0]) * bytes;
  for (int64_t k = 0; k < extent[2]; ++k) {
    for (int64_t j = 0; j < extent[1]; ++j) {
      const int64_t s = src_begin[0] + src_size[0] * ((src_begin[1] + j) + src_size[1] * (src_begin[2] + k));
      const int64_t d = dst_begin[0] + dst_size[0] * ((dst_begin[1] + j) + dst_size[1] * (dst_begin[2] + k));
      std::memcpy(dst + d * bytes, src + s * bytes, row);
    }
  }
}

void check_crop_geometry(const Geometry& cropped, const Box& box, const Geometry& full) {
  check_box(box, full.size, "uncrop");
  const Geometry expected = cropped_geometry(full, box);
  const std::string diff = expected.difference(cropped);
  if (!diff.empty()) {
    throw Error(ErrorCode::GeometryMismatch, "uncrop: the cropped image does not sit at box " + box.describe() +
                                                 " of the full grid: " + diff);
  }
}

}  // namespace

Box bounding_box(const LabelMap& labels, uint8_t label, int64_t margin_voxels) {
  const uint8_t* p = labels.data();
  const Box b = label == 0 ? box_where(labels.geometry().size, [p](int64_t i) { return p[i] != 0; })
                           : box_where(labels.geometry().size, [p, label](int64_t i) { return p[i] == label; });
  return grow(b, margin_voxels, labels.geometry().size);
}

Box nonzero_bounding_box(const Volume& volume, int64_t margin_voxels) {
  Box b;
  dispatch_pixel_type(volume.pixel_type(), [&](auto tag) {
    using T = decltype(tag);
    for (int c = 0; c < volume.channels(); ++c) {
      const T* p = volume.channel_data<T>(c);
      b = unite(b, box_where(volume.geometry().size, [p](int64_t i) { return !(p[i] == T(0)); }));
    }
  });
  return grow(b, margin_voxels, volume.geometry().size);
}

Geometry cropped_geometry(const Geometry& geometry, const Box& box) {
  check_box(box, geometry.size, "crop");
  Geometry g = geometry;
  g.size = box.size();
  const PointLPS p = geometry.index_to_physical(
      {static_cast<double>(box.begin[0]), static_cast<double>(box.begin[1]), static_cast<double>(box.begin[2])});
  g.origin_lps = {p.x, p.y, p.z};
  return g;
}

Volume crop(const Volume& volume, const Box& box) {
  Volume out(cropped_geometry(volume.geometry(), box), volume.pixel_type(), volume.channels());
  out.modality = volume.modality;
  out.channel_names = volume.channel_names;
  const std::size_t bytes = pixel_size(volume.pixel_type());
  for (int c = 0; c < volume.channels(); ++c) {
    const auto* src = static_cast<const unsigned char*>(volume.raw()) + c * volume.voxel_count() * bytes;
    auto* dst = static_cast<unsigned char*>(out.raw()) + c * out.voxel_count() * bytes;
    copy_box(src, volume.geometry().size, box.begin, dst, out.geometry().size, {0, 0, 0}, box.size(), bytes);
  }
  return out;
}

LabelMap crop(const LabelMap& labels, const Box& box) {
  LabelMap out(cropped_geometry(labels.geometry(), box));
  copy_box(labels.data(), labels.geometry().size, box.begin, out.data(), out.geometry().size, {0, 0, 0}, box.size(),
           1);
  return out;
}

Volume uncrop(const Volume& cropped, const Box& box, const Geometry& full, double fill) {
  check_crop_geometry(cropped.geometry(), box, full);
  Volume out(full, cropped.pixel_type(), cropped.channels());
  out.modality = cropped.modality;
  out.channel_names = cropped.channel_names;
  if (fill != 0) {
    dispatch_pixel_type(out.pixel_type(), [&](auto tag) {
      using T = decltype(tag);
      T v;
      if constexpr (std::is_floating_point_v<T>) {
        v = static_cast<T>(fill);
      } else {
        const double r = std::round(fill);
        v = static_cast<T>(std::clamp(r, static_cast<double>(std::numeric_limits<T>::lowest()),
                                      static_cast<double>(std::numeric_limits<T>::max())));
      }
      std::fill_n(out.data<T>(), out.voxel_count() * out.channels(), v);
    });
  }
  const std::size_t bytes = pixel_size(cropped.pixel_type());
  for (int c = 0; c < cropped.channels(); ++c) {
    const auto* src = static_cast<const unsigned char*>(cropped.raw()) + c * cropped.voxel_count() * bytes;
    auto* dst = static_cast<unsigned char*>(out.raw()) + c * out.voxel_count() * bytes;
    copy_box(src, cropped.geometry().size, {0, 0, 0}, dst, full.size, box.begin, box.size(), bytes);
  }
  return out;
}

LabelMap uncrop(const LabelMap& cropped, const Box& box, const Geometry& full, uint8_t fill) {
  check_crop_geometry(cropped.geometry(), box, full);
  LabelMap out(full);
  if (fill != 0) std::fill(out.voxels().begin(), out.voxels().end(), fill);
  copy_box(cropped.data(), cropped.geometry().size, {0, 0, 0}, out.data(), full.size, box.begin, box.size(), 1);
  return out;
}

}  // namespace tumorlab::imaging
