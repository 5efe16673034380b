// Every op's backward against central finite differences in float64, on
// small random shapes, and a whole block and model the same way.
#include "slm/train/autograd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "slm/train/transformer.h"

namespace slm::train {
namespace {

using V = Var<double>;
using Fn = std::function<V(Tape<double>&, const std::vector<V>&)>;

V random_var(std::mt19937_64& rng, std::vector<int64_t> shape, double scale = 1.0) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = dist(rng);
  return make_var<double>(std::move(shape), std::move(v), true);
}

// f(inputs) . r for a fixed random r: a scalar whose gradient reaches every output element.
double project(const V& out, const std::vector<double>& r) {
  double s = 0;
  for (size_t i = 0; i < r.size(); ++i) s += out->value[i] * r[i];
  return s;
}

// Largest |analytic - numeric| / max(1, |numeric|) over every input element.
double max_grad_error(const std::vector<V>& inputs, const Fn& fn) {
  std::mt19937_64 rng(7);
  for (const V& in : inputs) in->grad.clear();
  Tape<double> tape;
  V out = fn(tape, inputs);
  std::vector<double> r(out->value.size());
  std::normal_distribution<double> dist;
  for (double& x : r) x = dist(rng);
  std::copy(r.begin(), r.end(), out->g());
  tape.backward_seeded();
  double worst = 0;
  const double h = 1e-6;
  for (const V& in : inputs) {
    for (size_t i = 0; i < in->value.size(); ++i) {
      const double x0 = in->value[i];
      Tape<double> t1, t2;
      in->value[i] = x0 + h;
      const double fp = project(fn(t1, inputs), r);
      in->value[i] = x0 - h;
      const double fm = project(fn(t2, inputs), r);
      in->value[i] = x0;
      const double numeric = (fp - fm) / (2 * h);
      const double analytic = in->grad.empty() ? 0.0 : in->grad[i];
      worst = std::max(worst, std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric)));
    }
  }
  return worst;
}

constexpr double kTol = 1e-7;

TEST(Autograd, Linear) {
  std::mt19937_64 rng(1);
  auto x = random_var(rng, {5, 7}), w = random_var(rng, {3, 7});
  EXPECT_LT(max_grad_error({x, w}, [](Tape<double>& t, const std::vector<V>& in) { return linear(t, in[0], in[1]); }),
            kTol);
}

TEST(Autograd, Embedding) {
  std::mt19937_64 rng(2);
  auto table = random_var(rng, {6, 5});
  const std::vector<int32_t> tokens{3, 0, 3, 5, 1};  // a repeated token sums its gradients
  EXPECT_LT(max_grad_error({table}, [&](Tape<double>& t, const std::vector<V>& in) {
              return embedding(t, in[0], tokens);
            }), kTol);
}

TEST(Autograd, RmsNorm) {
  std::mt19937_64 rng(3);
  auto x = random_var(rng, {4, 9}), w = random_var(rng, {9});
  EXPECT_LT(max_grad_error({x, w}, [](Tape<double>& t, const std::vector<V>& in) {
              return rmsnorm(t, in[0], in[1], 1e-5);
            }), kTol);
}

TEST(Autograd, Rope) {
  std::mt19937_64 rng(4);
  auto x = random_var(rng, {5, 2 * 6});
  const std::vector<int64_t> pos{0, 1, 2, 7, 30};
  const std::vector<float> freqs{1.0f, 0.1f};  // n_rot 4 of head dim 6: two dims pass through
  EXPECT_LT(max_grad_error({x}, [&](Tape<double>& t, const std::vector<V>& in) {
              return rope(t, in[0], pos, 2, 6, 4, freqs);
            }), kTol);
}

TEST(Autograd, AttentionGroupedQuery) {
  std::mt19937_64 rng(5);
  const int64_t B = 2, T = 5, H = 4, HKV = 2, hd = 3;
  auto q = random_var(rng, {B * T, H * hd}), k = random_var(rng, {B * T, HKV * hd}),
       v = random_var(rng, {B * T, HKV * hd});
  for (int64_t window : {0, 2}) {
    EXPECT_LT(max_grad_error({q, k, v}, [&](Tape<double>& t, const std::vector<V>& in) {
                return attention(t, in[0], in[1], in[2], B, T, H, HKV, hd, window);
              }), kTol) << "window " << window;
  }
}

TEST(Autograd, AttentionIsCausal) {
  std::mt19937_64 rng(6);
  auto q = random_var(rng, {4, 2}), k = random_var(rng, {4, 2}), v = random_var(rng, {4, 2});
  Tape<double> t;
  V a = attention(t, q, k, v, 1, 4, 1, 1, 2);
  const std::vector<double> before(a->value.begin(), a->value.begin() + 6);
  k->value[7] += 5;  // the last key and value: only the last query sees them
  v->value[7] += 5;
  V b = attention(t, q, k, v, 1, 4, 1, 1, 2);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(before[i], b->value[i]);
  EXPECT_NE(a->value[7], b->value[7]);
}

TEST(Autograd, SwiGlu) {
  std::mt19937_64 rng(7);
  auto g = random_var(rng, {3, 5}, 2.0), u = random_var(rng, {3, 5});
  EXPECT_LT(max_grad_error({g, u}, [](Tape<double>& t, const std::vector<V>& in) { return swiglu(t, in[0], in[1]); }),
            kTol);
}

TEST(Autograd, AddUsesAnInputTwice) {
  std::mt19937_64 rng(8);
  auto a = random_var(rng, {2, 3});
  EXPECT_LT(max_grad_error({a}, [](Tape<double>& t, const std::vector<V>& in) { return add(t, in[0], in[0]); }), kTol);
}

TEST(Autograd, CrossEntropyIgnoresMaskedTargets) {
  std::mt19937_64 rng(9);
  auto x = random_var(rng, {4, 6}, 3.0);
  const std::vector<int32_t> targets{2, -1, 5, 0};
  EXPECT_LT(max_grad_error({x}, [&](Tape<double>& t, const std::vector<V>& in) {
              return cross_entropy(t, in[0], targets);
            }), kTol);
  Tape<double> t;
  V l = cross_entropy(t, x, std::vector<int32_t>{-1, -1, -1, -1});
  EXPECT_EQ(l->value[0], 0.0);
}

model::ModelConfig tiny_config() {
  model::ModelConfig c;
  c.n_vocab = 11;
  c.n_embd = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_head_kv = 1;
  c.head_dim = 4;
  c.n_rot = 4;
  c.n_ff = 12;
  c.n_ctx_train = 16;
  return c;
}

std::vector<V> all_params(const Transformer<double>& m) {
  std::vector<V> out;
  for (const auto& [name, v] : m.params()) out.push_back(v);
  return out;
}

TEST(Autograd, WholeBlock) {
  auto m = Transformer<double>::create(tiny_config(), 3);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  // Larger weights than the 0.02 initialisation, so every path carries signal.
  std::mt19937_64 rng(10);
  std::normal_distribution<double> dist(0.0, 0.5);
  for (const V& p : all_params(*m))
    for (double& x : p->value) x += dist(rng);
  auto x = random_var(rng, {2 * 5, 8});
  std::vector<V> inputs{x};
  for (const auto& [name, v] : m->params())
    if (name.rfind("blk.1.", 0) == 0) inputs.push_back(v);
  EXPECT_LT(max_grad_error(inputs, [&](Tape<double>& t, const std::vector<V>& in) { return m->block(t, 1, in[0], 2, 5); }),
            kTol);
}

TEST(Autograd, WholeModelLossWithAndWithoutRecompute) {
  auto m = Transformer<double>::create(tiny_config(), 4);
  ASSERT_TRUE(m.ok());
  std::mt19937_64 rng(11);
  std::normal_distribution<double> dist(0.0, 0.3);
  for (const V& p : all_params(*m))
    for (double& x : p->value) x += dist(rng);
  const std::vector<int32_t> tokens{1, 4, 9, 2, 0, 10, 3, 3}, targets{4, 9, 2, 0, 10, 3, 3, -1};
  for (bool recompute : {false, true}) {
    EXPECT_LT(max_grad_error(all_params(*m), [&](Tape<double>& t, const std::vector<V>&) {
                return m->loss(t, tokens, targets, 2, 4, recompute);
              }), kTol) << "recompute " << recompute;
  }
  // Recomputation changes memory, not numbers.
  std::vector<std::vector<double>> grads[2];
  for (int r = 0; r < 2; ++r) {
    for (const V& p : all_params(*m)) p->grad.clear();
    Tape<double> t;
    t.backward(m->loss(t, tokens, targets, 2, 4, r == 1));
    for (const V& p : all_params(*m)) grads[r].push_back(p->grad);
  }
  EXPECT_EQ(grads[0], grads[1]);
}

}  // namespace
}  // namespace slm::train
