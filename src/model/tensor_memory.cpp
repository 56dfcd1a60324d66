// LibTorch CPU allocator with huge pages and a cache of large blocks; see tensor_memory.h.
#include "tumorlab/model/tensor_memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tumorlab::model {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t round_up(std::size_t n, std::size_t to) {
  return (n + to - 1) / to * to;
}

// A 2 MiB-aligned anonymous mapping of `size` bytes (a multiple of 2 MiB), advised as huge pages.
void* map_block(std::size_t size) {
  void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto begin = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(begin, kHugePage);
  if (aligned > begin) munmap(raw, aligned - begin);
  const std::uintptr_t tail = aligned + size;
  const std::uintptr_t end = begin + size + kHugePage;
  if (end > tail) munmap(reinterpret_cast<void*>(tail), end - tail);
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, size, MADV_HUGEPAGE);  // advice only: without THP the block still works
  return p;
}

class TensorMemory final : public c10::Allocator {
 public:
  explicit TensorMemory(c10::Allocator* fallback) : fallback_(fallback) {}

  c10::DataPtr allocate(std::size_t n) const override {
    if (n < kTensorMemoryMinBytes) {
      // The default allocator's DataPtr has context == data and frees through raw_deleter's
      // fallback path below, so raw_allocate/raw_deallocate work for both kinds.
      return fallback_->allocate(n);
    }
    const std::size_t size = round_up(n, kHugePage);
    void* p = nullptr;
    std::vector<std::pair<std::size_t, void*>> evict;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Smallest cached block that fits and wastes at most a quarter (+ one huge page).
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= size + size / 4 + kHugePage) {
        p = it->second;
        in_use_[p] = it->first;
        cached_ -= it->first;
        in_use_bytes_ += it->first;
        free_.erase(it);
      } else {
        // A new mapping: first give back cached blocks so that mapped memory (in use + cached)
        // stays within the largest amount ever in use, the default allocator's peak RSS.
        peak_in_use_ = std::max(peak_in_use_, in_use_bytes_ + size);
        while (!free_.empty() && in_use_bytes_ + cached_ + size > peak_in_use_) {
          auto largest = std::prev(free_.end());
          evict.push_back(*largest);
          cached_ -= largest->first;
          free_.erase(largest);
        }
      }
    }
    for (const auto& [bytes, block] : evict) munmap(block, bytes);
    if (p == nullptr) {
      p = map_block(size);
      if (p == nullptr) {
        release();  // the cache may be what is in the way
        p = map_block(size);
      }
      TORCH_CHECK(p != nullptr, "tumorlab tensor memory: cannot map ", size, " bytes");
      std::lock_guard<std::mutex> lock(mutex_);
      in_use_[p] = size;
      in_use_bytes_ += size;
    }
    return {p, p, &TensorMemory::free_block, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &TensorMemory::free_block; }

  std::size_t release() const {
    std::multimap<std::size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      cached_ = 0;
    }
    std::size_t bytes = 0;
    for (const auto& [size, p] : blocks) {
      munmap(p, size);
      bytes += size;
    }
    return bytes;
  }

  std::size_t cached() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  static TensorMemory* instance;

 private:
  static void free_block(void* p) {
    if (p == nullptr) return;
    TensorMemory& self = *instance;
    std::size_t size = 0;
    {
      std::lock_guard<std::mutex> lock(self.mutex_);
      const auto it = self.in_use_.find(p);
      if (it == self.in_use_.end()) {
        // A small block from the fallback allocator (raw_deallocate path).
        self.fallback_->raw_deleter()(p);
        return;
      }
      size = it->second;
      self.in_use_.erase(it);
      self.in_use_bytes_ -= size;
      if (self.cached_ + size <= kTensorMemoryMaxCachedBytes) {
        self.free_.emplace(size, p);
        self.cached_ += size;
        return;
      }
    }
    munmap(p, size);
  }

  c10::Allocator* fallback_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, std::size_t> in_use_;
  mutable std::multimap<std::size_t, void*> free_;
  mutable std::size_t cached_ = 0;
  mutable std::size_t in_use_bytes_ = 0;  // large blocks handed out and not yet freed
  mutable std::size_t peak_in_use_ = 0;   // the most in_use_bytes_ has been (incl. a request)
};

TensorMemory* TensorMemory::instance = nullptr;

}  // namespace

void install_tensor_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("TUMORLAB_TENSOR_MEMORY");
    if (env != nullptr && (std::strcmp(env, "off") == 0 || std::strcmp(env, "0") == 0)) return;
    // Never destroyed: tensors may be freed during static destruction.
    TensorMemory::instance = new TensorMemory(c10::GetCPUAllocator());
    c10::SetCPUAllocator(TensorMemory::instance, /*priority=*/1);
  });
}

std::size_t release_cached_tensor_memory() {
  return TensorMemory::instance ? TensorMemory::instance->release() : 0;
}

std::size_t cached_tensor_memory() {
  return TensorMemory::instance ? TensorMemory::instance->cached() : 0;
}

}  // namespace tumorlab::model
