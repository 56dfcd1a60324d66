#pragma once
// INTERNAL to src/model: LibTorch's CPU allocator for inference.
//
// Why: a U-Net forward pass allocates and frees tens of large activation tensors (tens of MB
// each). glibc serves every block above 32 MB (and most above 128 kB) with a fresh mmap, so each
// tensor is paid for again in page faults: 4 kB at a time, and on virtual machines that hand
// freed memory back to the host (free page reporting, ballooning) each fault is a round trip to
// the host. Measured on the 2-core VM of this project: writing 64 MB the first time took 0.1-0.8 s,
// the second time 0.002-0.02 s; the MIP-PET network ran 2-3x faster with huge pages.
//
// What: blocks of at least kMinBytes come from 2 MiB-aligned anonymous mappings advised as
// transparent huge pages (MADV_HUGEPAGE: 512x fewer faults, fewer TLB misses), and freed blocks
// are kept (up to kMaxCachedBytes) and handed out again for requests of a similar size, so the
// second window batch and the second case reuse memory that is already mapped. Before mapping a
// new block, cached blocks are unmapped (largest first) until in-use + cached + the new block is
// no more than the largest amount ever in use: the peak RSS stays that of the default allocator. Smaller requests
// go to LibTorch's default allocator. Memory is never zero-filled on reuse (LibTorch does not
// expect it).

#include <cstddef>

namespace tumorlab::model {

inline constexpr std::size_t kTensorMemoryMinBytes = std::size_t{1} << 20;        // 1 MiB
inline constexpr std::size_t kTensorMemoryMaxCachedBytes = std::size_t{1} << 30;  // 1 GiB

// Makes the allocator above LibTorch's CPU allocator (once per process; later calls do nothing).
// Tensors allocated before stay valid (each carries its own deleter). The environment variable
// TUMORLAB_TENSOR_MEMORY=off keeps LibTorch's default allocator (for comparisons and diagnosis).
void install_tensor_memory();

// Unmaps the cached free blocks (memory in use is untouched). Returns the bytes released.
std::size_t release_cached_tensor_memory();

// Bytes currently held in the cache of free blocks.
std::size_t cached_tensor_memory();

}  // namespace tumorlab::model
