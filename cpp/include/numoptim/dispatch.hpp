// Run-time choice of the instruction set a kernel loop is compiled for.
//
// Every update rule is one plain scalar loop. The same loop is compiled three times,
// for AVX-512, for AVX2 (both with F16C, for float16 storage) and for the x86-64
// baseline, by instantiating it inside a
// function that carries a GCC/Clang `target` attribute (`flatten` inlines the rule
// into it, so the whole loop is vectorized for that target). The level is chosen once
// at run time from the CPU, and the environment variable NUMOPTIM_DISPATCH
// (avx512, avx2, baseline) can force a lower one for tests and bug reports.
//
// We use `target` rather than `target_clones` because ifunc resolution cannot be
// overridden at run time.
//
// Each instantiation works on local copies of the rule and its scalars: the rule's
// flags and constants then cannot alias the arrays the loop stores to, so the compiler
// hoists them and unswitches the loop on the flags. Through the caller's reference it
// reloads them every iteration and the loop stays scalar.
//
// Results are bit-identical across levels: the build uses
// -ffp-contract=off, so no level fuses multiply-adds, and sqrt/div are exact IEEE.
#pragma once

#include <cstdlib>
#include <cstring>

namespace numoptim {

enum class Isa { baseline = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "baseline";
  }
}

// The best level this CPU supports.
inline Isa cpu_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // F16C (float16 conversions) comes with every AVX2 CPU; it is checked all the same.
  const bool f16c = __builtin_cpu_supports("f16c");
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && f16c)
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
    return Isa::avx2;
#endif
  return Isa::baseline;
}

// The level kernels run at: the CPU's best, lowered by NUMOPTIM_DISPATCH if set.
// A request above what the CPU supports is capped, never honoured.
inline Isa active_isa() {
  static const Isa chosen = [] {
    Isa best = cpu_isa();
    const char* env = std::getenv("NUMOPTIM_DISPATCH");
    if (env == nullptr || *env == '\0') return best;
    Isa wanted = best;
    if (std::strcmp(env, "baseline") == 0) wanted = Isa::baseline;
    else if (std::strcmp(env, "avx2") == 0) wanted = Isa::avx2;
    else if (std::strcmp(env, "avx512") == 0) wanted = Isa::avx512;
    return wanted < best ? wanted : best;
  }();
  return chosen;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <class Rule, class Scalars, class T>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,f16c"), flatten)) void update_avx512(
    const Rule& rule, const Scalars& s, T* const* buffers, std::size_t n) {
  const Rule local_rule = rule;
  const Scalars local_scalars = s;
  local_rule.update(local_scalars, buffers, n);
}

template <class Rule, class Scalars, class T>
__attribute__((target("avx2,fma,f16c"), flatten)) void update_avx2(const Rule& rule, const Scalars& s,
                                                              T* const* buffers, std::size_t n) {
  const Rule local_rule = rule;
  const Scalars local_scalars = s;
  local_rule.update(local_scalars, buffers, n);
}
#endif

template <class Rule, class Scalars, class T>
__attribute__((flatten)) void update_baseline(const Rule& rule, const Scalars& s,
                                              T* const* buffers, std::size_t n) {
  const Rule local_rule = rule;
  const Scalars local_scalars = s;
  local_rule.update(local_scalars, buffers, n);
}

// Runs rule.update(s, buffers, n) compiled for the given instruction set.
template <class Rule, class Scalars, class T>
inline void update_at(Isa isa, const Rule& rule, const Scalars& s, T* const* buffers,
                      std::size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (isa == Isa::avx512) return update_avx512(rule, s, buffers, n);
  if (isa == Isa::avx2) return update_avx2(rule, s, buffers, n);
#endif
  update_baseline(rule, s, buffers, n);
}

}  // namespace numoptim
