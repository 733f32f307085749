// The one file that instantiates a numoptim kernel: Adam with L2 weight decay on two
// float32 tensors, through the same driver the Python module uses.
#include <array>
#include <cstddef>
#include <vector>

#include "numoptim/adam.hpp"
#include "numoptim/dispatch.hpp"
#include "numoptim/multi_tensor.hpp"

void adam_step(float* const* params, float* const* grads, float* const* exp_avgs,
               float* const* exp_avg_sqs, float* const* steps, const std::size_t* sizes,
               std::size_t count, int num_threads) {
  const numoptim::Adam<float> rule{/*lr=*/0.01, /*beta1=*/0.9, /*beta2=*/0.999, /*eps=*/1e-8,
                                   /*weight_decay=*/0.1, /*amsgrad=*/false,
                                   /*maximize=*/false, /*decoupled=*/false};
  numoptim::TensorList<float, numoptim::Adam<float>::num_buffers> tensors;
  std::vector<numoptim::Adam<float>::Scalars> scalars;
  for (std::size_t t = 0; t < count; ++t) {
    // max_exp_avg_sq is only read with amsgrad; the driver still wants a pointer.
    tensors.buffers.push_back({params[t], grads[t], exp_avgs[t], exp_avg_sqs[t], nullptr});
    tensors.sizes.push_back(sizes[t]);
    scalars.push_back(rule.prepare(&steps[t], /*fresh=*/false));
  }
  numoptim::run_multi_tensor(rule, scalars, tensors, num_threads, numoptim::active_isa());
}
