#include "tumorlab/model/tensor_memory.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>

using namespace tumorlab::model;

TEST(TensorMemory, LargeTensors_HugePageAlignedAndReusedAfterFree) {
  install_tensor_memory();
  release_cached_tensor_memory();
  void* first = nullptr;
  {
    torch::Tensor a = torch::full({3, 1000, 1000}, 2.5f);  // 12 MB
    first = a.data_ptr();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first) % (std::uintptr_t{2} << 20), 0u);
    EXPECT_FLOAT_EQ(a.sum().item<float>(), 2.5f * 3e6f);
  }
  EXPECT_GE(cached_tensor_memory(), std::size_t{12} << 20);
  torch::Tensor b = torch::ones({3, 1000, 1000});  // same size: the cached block comes back
  EXPECT_EQ(b.data_ptr(), first);
  EXPECT_EQ(cached_tensor_memory(), 0u);
  EXPECT_FLOAT_EQ(b.sum().item<float>(), 3e6f);  // written anew, no stale values
}

TEST(TensorMemory, SmallTensorsAndRelease) {
  install_tensor_memory();
  torch::Tensor s = torch::arange(1000, torch::kFloat32);  // below the threshold: default allocator
  EXPECT_FLOAT_EQ(s.sum().item<float>(), 499500.0f);
  { torch::Tensor big = torch::zeros({4, 1 << 20}); }
  EXPECT_GT(cached_tensor_memory(), 0u);
  EXPECT_GE(release_cached_tensor_memory(), std::size_t{16} << 20);
  EXPECT_EQ(cached_tensor_memory(), 0u);
  torch::Tensor again = torch::ones({4, 1 << 20});  // maps a new block
  EXPECT_FLOAT_EQ(again.sum().item<float>(), 4.0f * (1 << 20));
}
