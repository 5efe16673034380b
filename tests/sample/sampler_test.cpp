// The sampler against what each rule means, on hand-made logits.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "slm/sample/sampler.h"

namespace slm::sample {
namespace {

SamplerConfig plain(float temp) {
  SamplerConfig c;
  c.temperature = temp;
  c.top_k = 0;
  c.top_p = 1.0f;
  c.min_p = 0.0f;
  return c;
}

std::map<int32_t, int> histogram(SamplerConfig c, const std::vector<float>& logits, int n) {
  Sampler s(c);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) ++h[s.sample(logits.data(), static_cast<int64_t>(logits.size()))];
  return h;
}

TEST(Sampler, GreedyPicksTheFirstMaximum) {
  Sampler s(plain(0));
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(s.sample(l.data(), 4), 1);
}

TEST(Sampler, TemperatureOneFollowsTheSoftmax) {
  std::vector<float> l = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};  // p = 0.1 0.2 0.3 0.4
  const int n = 40000;
  auto h = histogram(plain(1), l, n);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(h[i] / static_cast<double>(n), 0.1 * (i + 1), 0.01) << i;
}

TEST(Sampler, LowTemperatureSharpens) {
  std::vector<float> l = {0.0f, 1.0f};
  auto h = histogram(plain(0.1f), l, 2000);
  EXPECT_GT(h[1], 1990);  // p(0) = 1 / (1 + e^10)
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
  SamplerConfig c = plain(1);
  c.top_k = 2;
  std::vector<float> l = {1.0f, 0.9f, 0.8f, 2.0f, 0.0f};
  auto h = histogram(c, l, 2000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_GT(h[3], 0);
  EXPECT_GT(h[0], 0);
}

TEST(Sampler, TopPKeepsTheSmallestSetWithThatMass) {
  SamplerConfig c = plain(1);
  c.top_p = 0.55f;  // p = 0.4 0.3 0.2 0.1 sorted: 0.4 + 0.3 >= 0.55 keeps two
  std::vector<float> l = {std::log(4.0f), std::log(3.0f), std::log(2.0f), 0.0f};
  auto h = histogram(c, l, 4000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[0] / 4000.0, 4.0 / 7.0, 0.03);
}

TEST(Sampler, MinPDropsTokensFarBelowTheTop) {
  SamplerConfig c = plain(1);
  c.min_p = 0.6f;  // keeps p >= 0.6 * 0.4 = 0.24: tokens 0 and 1
  std::vector<float> l = {std::log(4.0f), std::log(3.0f), std::log(2.0f), 0.0f};
  auto h = histogram(c, l, 2000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.count(2), 0u);
}

TEST(Sampler, RepetitionPenaltyTurnsGreedyAway) {
  SamplerConfig c = plain(0);
  c.repeat_penalty = 2.0f;
  Sampler s(c);
  std::vector<float> l = {1.0f, 1.5f};
  s.accept(1);  // 1.5 / 2 = 0.75 < 1.0
  EXPECT_EQ(s.sample(l.data(), 2), 0);
  // Negative logits are multiplied, so a penalised token gets less likely, not more.
  Sampler s2(c);
  std::vector<float> neg = {-1.0f, -0.6f};
  s2.accept(1);  // -0.6 * 2 = -1.2 < -1.0
  EXPECT_EQ(s2.sample(neg.data(), 2), 0);
}

TEST(Sampler, NanLogitsAreNeverPicked) {
  std::vector<float> l = {NAN, 1.0f, NAN, 0.5f};
  Sampler g(plain(0));
  EXPECT_EQ(g.sample(l.data(), 4), 1);
  auto h = histogram(plain(1), l, 500);
  EXPECT_EQ(h.count(0) + h.count(2), 0u);
}

TEST(Sampler, SeedRepeats) {
  std::vector<float> l(100);
  for (int i = 0; i < 100; ++i) l[i] = std::sin(i * 0.7f);
  SamplerConfig c = plain(1);
  c.seed = 42;
  Sampler a(c), b(c);
  c.seed = 43;
  Sampler d(c);
  std::vector<int32_t> xa, xb, xd;
  for (int i = 0; i < 50; ++i) {
    xa.push_back(a.sample(l.data(), 100));
    xb.push_back(b.sample(l.data(), 100));
    xd.push_back(d.sample(l.data(), 100));
  }
  EXPECT_EQ(xa, xb);
  EXPECT_NE(xa, xd);
}

TEST(Sampler, BadSettingsAreRefused) {
  SamplerConfig c;
  c.temperature = -1;
  EXPECT_FALSE(c.validate().ok());
  c = SamplerConfig();
  c.top_p = 0;
  EXPECT_FALSE(c.validate().ok());
  c = SamplerConfig();
  c.min_p = 1.5f;
  EXPECT_FALSE(c.validate().ok());
  c = SamplerConfig();
  c.repeat_penalty = 0;
  EXPECT_FALSE(c.validate().ok());
  c = SamplerConfig();
  c.temperature = NAN;
  EXPECT_FALSE(c.validate().ok());
  EXPECT_TRUE(SamplerConfig().validate().ok());
}

}  // namespace
}  // namespace slm::sample
