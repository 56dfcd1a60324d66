#pragma once
// Label deltas: what one edit changed, as runs over the smallest box holding every changed voxel
// (ITK-SNAP's undo model). A delta applies forward (before -> after) and reverts backward, so
// the same record serves undo/redo, the audit trail (voxels changed, where) and training (which
// voxels a person corrected).
//
// Encoding: the box is scanned in label-map order (i fastest, then j, then k); consecutive
// voxels with the same (before, after) pair form one run. Unchanged voxels inside the box are
// runs with before == after. serialize() writes a small versioned little-endian binary form;
// deserialize() checks every field, so bytes from a client or a file cannot corrupt memory.

#include <cstdint>
#include <string>
#include <vector>

#include "tumorlab/core/volume.h"
#include "tumorlab/imaging/box.h"

namespace tumorlab::edit {

using imaging::Box;

struct LabelRun {
  uint32_t length = 0;
  uint8_t before = 0;
  uint8_t after = 0;
  bool operator==(const LabelRun& o) const { return length == o.length && before == o.before && after == o.after; }
};

class LabelDelta {
 public:
  LabelDelta() = default;

  // The changes that turn `before` into `after` (same grid, else Error(GeometryMismatch)).
  // `name` says what made them ("Brush", "Region grow"); it is stored, never interpreted.
  static LabelDelta between(const LabelMap& before, const LabelMap& after, std::string name);
  // The changes inside `box` (inside a grid of `grid_size`): `before` and `after` hold the box's
  // voxels in scan order (i fastest). The delta's box is trimmed to the changed voxels.
  static LabelDelta from_box(const Size3& grid_size, const Box& box, const std::vector<uint8_t>& before,
                             const std::vector<uint8_t>& after, std::string name);

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  const Size3& grid_size() const { return grid_size_; }
  // Smallest box holding every changed voxel; empty when nothing changed.
  const Box& box() const { return box_; }
  const std::vector<LabelRun>& runs() const { return runs_; }
  bool empty() const { return changed_voxels_ == 0; }
  int64_t changed_voxels() const { return changed_voxels_; }
  // Voxels that became non-zero minus voxels that became zero (label-agnostic).
  int64_t foreground_change() const;
  // Voxels that became `label` minus voxels that stopped being `label`.
  int64_t label_change(uint8_t label) const;

  // Applies before -> after. Every voxel in the box must hold its `before` value, else
  // Error(Conflict) and `labels` is left unchanged; a grid of another size is
  // Error(GeometryMismatch).
  void apply(LabelMap& labels) const;
  // Applies after -> before, with the same checks (voxels must hold their `after` values).
  void revert(LabelMap& labels) const;
  // The delta that undoes this one.
  LabelDelta inverse() const;

  std::vector<uint8_t> serialize() const;
  // Error(CorruptFile) naming `source` for anything malformed.
  static LabelDelta deserialize(const std::vector<uint8_t>& bytes, const std::string& source = "label delta");

  bool operator==(const LabelDelta& o) const {
    return name_ == o.name_ && grid_size_ == o.grid_size_ && box_ == o.box_ && runs_ == o.runs_;
  }

 private:
  void transfer(LabelMap& labels, bool forward) const;
  template <class Before, class After>
  static LabelDelta build(const Size3& grid_size, const Box& box, Before before, After after, std::string name);

  std::string name_;
  Size3 grid_size_{0, 0, 0};
  Box box_;
  std::vector<LabelRun> runs_;
  int64_t changed_voxels_ = 0;
};

// A copy of `labels` with `delta` applied.
LabelMap applied(const LabelMap& labels, const LabelDelta& delta);

// Undo/redo stack of named deltas for one label map. push() drops the redo branch.
// `max_entries` (0 = unlimited) bounds the history: the oldest entries are dropped first.
class DeltaJournal {
 public:
  explicit DeltaJournal(std::size_t max_entries = 0) : max_entries_(max_entries) {}

  // Records an edit that has already been applied to the label map. Empty deltas are ignored.
  void push(LabelDelta delta);
  bool can_undo() const { return position_ > 0; }
  bool can_redo() const { return position_ < entries_.size(); }
  // Reverts the latest edit on `labels` and returns its name; Error(BadArgument) when there is
  // nothing to undo.
  std::string undo(LabelMap& labels);
  std::string redo(LabelMap& labels);
  std::size_t size() const { return entries_.size(); }
  std::size_t position() const { return position_; }
  const std::vector<LabelDelta>& entries() const { return entries_; }

 private:
  std::size_t max_entries_;
  std::vector<LabelDelta> entries_;
  std::size_t position_ = 0;  // entries_[0, position_) are applied
};

}  // namespace tumorlab::edit
