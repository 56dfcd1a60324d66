#include "tumorlab/edit/delta.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace tumorlab::edit {
namespace {

constexpr char kMagic[8] = {'T', 'L', 'D', 'E', 'L', 'T', 'A', '1'};
constexpr uint32_t kMaxNameBytes = 4096;

void check_grid(const LabelMap& labels, const Size3& grid_size, const char* what) {
  if (labels.geometry().size != grid_size)
    throw Error(ErrorCode::GeometryMismatch, std::string("label delta: cannot ") + what + " a delta made on a " +
                                                 std::to_string(grid_size[0]) + "x" + std::to_string(grid_size[1]) +
                                                 "x" + std::to_string(grid_size[2]) + " grid to a " +
                                                 labels.geometry().describe() + " label map");
}

// Calls f(linear index in the label map) for each voxel of `box`, in scan order.
template <class F>
void for_each_in_box(const Size3& size, const Box& box, F&& f) {
  for (int64_t k = box.begin[2]; k < box.end[2]; ++k)
    for (int64_t j = box.begin[1]; j < box.end[1]; ++j) {
      int64_t idx = box.begin[0] + size[0] * (j + size[1] * k);
      for (int64_t i = box.begin[0]; i < box.end[0]; ++i, ++idx) f(idx);
    }
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<uint8_t>(v >> (8 * b)));
}
void put_i64(std::vector<uint8_t>& out, int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  for (int b = 0; b < 8; ++b) out.push_back(static_cast<uint8_t>(u >> (8 * b)));
}

class Reader {
 public:
  Reader(const std::vector<uint8_t>& bytes, const std::string& source) : bytes_(bytes), source_(source) {}
  void need(std::size_t n, const char* field) {
    if (bytes_.size() - pos_ < n)
      throw Error(ErrorCode::CorruptFile, source_ + ": truncated at " + field + " (offset " + std::to_string(pos_) +
                                              ", " + std::to_string(bytes_.size()) + " bytes in all)");
  }
  uint32_t u32(const char* field) {
    need(4, field);
    uint32_t v = 0;
    for (int b = 0; b < 4; ++b) v |= static_cast<uint32_t>(bytes_[pos_ + b]) << (8 * b);
    pos_ += 4;
    return v;
  }
  int64_t i64(const char* field) {
    need(8, field);
    uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v |= static_cast<uint64_t>(bytes_[pos_ + b]) << (8 * b);
    pos_ += 8;
    return static_cast<int64_t>(v);
  }
  uint8_t u8(const char* field) {
    need(1, field);
    return bytes_[pos_++];
  }
  std::string str(std::size_t n, const char* field) {
    need(n, field);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  bool done() const { return pos_ == bytes_.size(); }
  [[noreturn]] void fail(const std::string& what) const { throw Error(ErrorCode::CorruptFile, source_ + ": " + what); }

 private:
  const std::vector<uint8_t>& bytes_;
  const std::string& source_;
  std::size_t pos_ = 0;
};

}  // namespace

// before(i, j, k) / after(i, j, k): values at grid index (i, j, k) for voxels of `box`.
template <class Before, class After>
LabelDelta LabelDelta::build(const Size3& grid_size, const Box& box, Before before, After after, std::string name) {
  LabelDelta d;
  d.name_ = std::move(name);
  d.grid_size_ = grid_size;
  Box changed{box.end, box.begin};
  for (int64_t k = box.begin[2]; k < box.end[2]; ++k)
    for (int64_t j = box.begin[1]; j < box.end[1]; ++j)
      for (int64_t i = box.begin[0]; i < box.end[0]; ++i) {
        if (before(i, j, k) == after(i, j, k)) continue;
        changed.begin[0] = std::min(changed.begin[0], i);
        changed.begin[1] = std::min(changed.begin[1], j);
        changed.begin[2] = std::min(changed.begin[2], k);
        changed.end[0] = std::max(changed.end[0], i + 1);
        changed.end[1] = std::max(changed.end[1], j + 1);
        changed.end[2] = std::max(changed.end[2], k + 1);
      }
  if (box.empty() || changed.empty()) {
    d.box_ = Box{};
    return d;
  }
  d.box_ = changed;
  LabelRun run;
  for (int64_t k = changed.begin[2]; k < changed.end[2]; ++k)
    for (int64_t j = changed.begin[1]; j < changed.end[1]; ++j)
      for (int64_t i = changed.begin[0]; i < changed.end[0]; ++i) {
        const uint8_t a = before(i, j, k), b = after(i, j, k);
        if (run.length > 0 && run.before == a && run.after == b && run.length < std::numeric_limits<uint32_t>::max()) {
          ++run.length;
          continue;
        }
        if (run.length > 0) d.runs_.push_back(run);
        run = LabelRun{1, a, b};
      }
  if (run.length > 0) d.runs_.push_back(run);
  for (const LabelRun& r : d.runs_)
    if (r.before != r.after) d.changed_voxels_ += r.length;
  return d;
}

LabelDelta LabelDelta::between(const LabelMap& before, const LabelMap& after, std::string name) {
  const Geometry& g = before.geometry();
  if (g.size != after.geometry().size)
    throw Error(ErrorCode::GeometryMismatch,
                "label delta: the label maps differ in size: " + g.describe() + " vs " + after.geometry().describe());
  const uint8_t* a = before.data();
  const uint8_t* b = after.data();
  const Size3 s = g.size;
  auto at = [s](const uint8_t* v) {
    return [v, s](int64_t i, int64_t j, int64_t k) { return v[i + s[0] * (j + s[1] * k)]; };
  };
  return build(s, imaging::full_box(s), at(a), at(b), std::move(name));
}

LabelDelta LabelDelta::from_box(const Size3& grid_size, const Box& box, const std::vector<uint8_t>& before,
                                const std::vector<uint8_t>& after, std::string name) {
  if (before.size() != static_cast<std::size_t>(box.voxel_count()) || after.size() != before.size())
    throw Error(ErrorCode::Internal, "label delta: box holds " + std::to_string(box.voxel_count()) + " voxels but " +
                                         std::to_string(before.size()) + "/" + std::to_string(after.size()) +
                                         " values were given");
  for (int a = 0; a < 3; ++a)
    if (!box.empty() && (box.begin[a] < 0 || box.end[a] > grid_size[a]))
      throw Error(ErrorCode::Internal, "label delta: box " + box.describe() + " is outside the grid");
  const Size3 bs = box.size();
  auto at = [&box, bs](const std::vector<uint8_t>& v) {
    return [&v, &box, bs](int64_t i, int64_t j, int64_t k) {
      return v[(i - box.begin[0]) + bs[0] * ((j - box.begin[1]) + bs[1] * (k - box.begin[2]))];
    };
  };
  return build(grid_size, box, at(before), at(after), std::move(name));
}

int64_t LabelDelta::foreground_change() const {
  int64_t n = 0;
  for (const LabelRun& r : runs_) {
    if (r.before == 0 && r.after != 0) n += r.length;
    if (r.before != 0 && r.after == 0) n -= r.length;
  }
  return n;
}

int64_t LabelDelta::label_change(uint8_t label) const {
  int64_t n = 0;
  for (const LabelRun& r : runs_) {
    if (r.before == r.after) continue;
    if (r.after == label) n += r.length;
    if (r.before == label) n -= r.length;
  }
  return n;
}

void LabelDelta::transfer(LabelMap& labels, bool forward) const {
  if (empty()) return;
  check_grid(labels, grid_size_, forward ? "apply" : "revert");
  const Size3& s = grid_size_;
  uint8_t* v = labels.data();
  // Check first so that a conflicting delta leaves the label map untouched.
  {
    std::size_t r = 0;
    uint32_t used = 0;
    int64_t mismatches = 0;
    for_each_in_box(s, box_, [&](int64_t i) {
      const LabelRun& run = runs_[r];
      const uint8_t expected = forward ? run.before : run.after;
      if (run.before != run.after && v[i] != expected) ++mismatches;
      if (++used == run.length) {
        ++r;
        used = 0;
      }
    });
    if (mismatches > 0)
      throw Error(ErrorCode::Conflict, "label delta '" + name_ + "': " + std::to_string(mismatches) +
                                           " voxel(s) no longer hold the value the edit " +
                                           (forward ? "started from" : "produced") +
                                           "; the label map changed since the edit was made");
  }
  std::size_t r = 0;
  uint32_t used = 0;
  for_each_in_box(s, box_, [&](int64_t i) {
    const LabelRun& run = runs_[r];
    v[i] = forward ? run.after : run.before;
    if (++used == run.length) {
      ++r;
      used = 0;
    }
  });
}

void LabelDelta::apply(LabelMap& labels) const {
  transfer(labels, true);
}
void LabelDelta::revert(LabelMap& labels) const {
  transfer(labels, false);
}

LabelDelta LabelDelta::inverse() const {
  LabelDelta d = *this;
  for (LabelRun& r : d.runs_) std::swap(r.before, r.after);
  return d;
}

std::vector<uint8_t> LabelDelta::serialize() const {
  std::vector<uint8_t> out(kMagic, kMagic + sizeof kMagic);
  const std::string name = name_.substr(0, kMaxNameBytes);
  put_u32(out, static_cast<uint32_t>(name.size()));
  out.insert(out.end(), name.begin(), name.end());
  for (int a = 0; a < 3; ++a) put_i64(out, grid_size_[a]);
  for (int a = 0; a < 3; ++a) put_i64(out, box_.begin[a]);
  for (int a = 0; a < 3; ++a) put_i64(out, box_.end[a]);
  put_u32(out, static_cast<uint32_t>(runs_.size()));
  for (const LabelRun& r : runs_) {
    put_u32(out, r.length);
    out.push_back(r.before);
    out.push_back(r.after);
  }
  return out;
}

LabelDelta LabelDelta::deserialize(const std::vector<uint8_t>& bytes, const std::string& source) {
  Reader in(bytes, source);
  if (in.str(sizeof kMagic, "magic") != std::string(kMagic, sizeof kMagic))
    in.fail("not a tumorlab label delta (expected the magic 'TLDELTA1')");
  LabelDelta d;
  const uint32_t name_size = in.u32("name length");
  if (name_size > kMaxNameBytes) in.fail("name length " + std::to_string(name_size) + " exceeds 4096");
  d.name_ = in.str(name_size, "name");
  for (int a = 0; a < 3; ++a) d.grid_size_[a] = in.i64("grid size");
  for (int a = 0; a < 3; ++a) d.box_.begin[a] = in.i64("box begin");
  for (int a = 0; a < 3; ++a) d.box_.end[a] = in.i64("box end");
  const uint32_t run_count = in.u32("run count");
  in.need(static_cast<std::size_t>(run_count) * 6, "runs");
  d.runs_.reserve(run_count);
  for (uint32_t r = 0; r < run_count; ++r) {
    LabelRun run;
    run.length = in.u32("run length");
    run.before = in.u8("run before");
    run.after = in.u8("run after");
    if (run.length == 0) in.fail("run " + std::to_string(r) + " has length 0");
    d.runs_.push_back(run);
  }
  if (!in.done()) in.fail("trailing bytes after the last run");
  for (int a = 0; a < 3; ++a)
    if (d.grid_size_[a] < 1 || d.grid_size_[a] > (int64_t{1} << 24)) in.fail("grid size out of range");
  int64_t total = 0;
  for (const LabelRun& r : d.runs_) {
    total += r.length;
    if (r.before != r.after) d.changed_voxels_ += r.length;
  }
  if (d.runs_.empty()) {
    if (!d.box_.empty() || d.box_.begin != Size3{0, 0, 0}) in.fail("a delta without runs must have an empty box");
    return d;
  }
  for (int a = 0; a < 3; ++a)
    if (d.box_.begin[a] < 0 || d.box_.end[a] > d.grid_size_[a] || d.box_.end[a] <= d.box_.begin[a])
      in.fail("box " + d.box_.describe() + " does not lie inside the grid");
  if (total != d.box_.voxel_count())
    in.fail("runs cover " + std::to_string(total) + " voxels but the box holds " +
            std::to_string(d.box_.voxel_count()));
  return d;
}

LabelMap applied(const LabelMap& labels, const LabelDelta& delta) {
  LabelMap out = labels;
  delta.apply(out);
  return out;
}

void DeltaJournal::push(LabelDelta delta) {
  if (delta.empty()) return;
  entries_.resize(position_);
  entries_.push_back(std::move(delta));
  if (max_entries_ > 0 && entries_.size() > max_entries_)
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(entries_.size() - max_entries_));
  position_ = entries_.size();
}

std::string DeltaJournal::undo(LabelMap& labels) {
  if (!can_undo()) throw Error(ErrorCode::BadArgument, "undo: nothing to undo");
  const LabelDelta& d = entries_[position_ - 1];
  d.revert(labels);
  --position_;
  return d.name();
}

std::string DeltaJournal::redo(LabelMap& labels) {
  if (!can_redo()) throw Error(ErrorCode::BadArgument, "redo: nothing to redo");
  const LabelDelta& d = entries_[position_];
  d.apply(labels);
  ++position_;
  return d.name();
}

}  // namespace tumorlab::edit
