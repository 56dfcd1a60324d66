#pragma once
// Index boxes: axis-aligned voxel ranges [begin, end) on a grid (end exclusive).

#include <algorithm>
#include <cstdint>
#include <string>

#include "tumorlab/core/geometry.h"

namespace tumorlab::imaging {

struct Box {
  Size3 begin{0, 0, 0};
  Size3 end{0, 0, 0};  // exclusive

  // True when the box holds no voxel (end <= begin along some axis).
  bool empty() const { return end[0] <= begin[0] || end[1] <= begin[1] || end[2] <= begin[2]; }
  Size3 size() const {
    return {std::max<int64_t>(0, end[0] - begin[0]), std::max<int64_t>(0, end[1] - begin[1]),
            std::max<int64_t>(0, end[2] - begin[2])};
  }
  int64_t voxel_count() const {
    const Size3 s = size();
    return s[0] * s[1] * s[2];
  }
  bool contains(int64_t i, int64_t j, int64_t k) const {
    return i >= begin[0] && i < end[0] && j >= begin[1] && j < end[1] && k >= begin[2] && k < end[2];
  }
  bool operator==(const Box& o) const { return begin == o.begin && end == o.end; }
  bool operator!=(const Box& o) const { return !(*this == o); }
  std::string describe() const;  // "[b0,e0)x[b1,e1)x[b2,e2)"
};

// The whole grid of `size`.
inline Box full_box(const Size3& size) { return Box{{0, 0, 0}, size}; }
// Smallest box holding both (an empty box is ignored).
Box unite(const Box& a, const Box& b);
// Common part (may be empty).
Box intersect(const Box& a, const Box& b);
// `box` grown by `margin` voxels per axis on both sides, clipped to [0, size). An empty box stays empty.
Box grow(const Box& box, const Size3& margin, const Size3& size);
Box grow(const Box& box, int64_t margin, const Size3& size);

}  // namespace tumorlab::imaging
