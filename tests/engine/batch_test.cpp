// BatchGenerator against Session: sequences decoded together in one batch give
// the same greedy tokens as each decoded alone by Session (a separate code path).
#include "slm/engine/batch.h"

#include "slm/engine/bench.h"

#include <algorithm>
#include <map>

#include "test_util.h"

namespace slm::engine {
namespace {

const std::string kModelRel = "models/stories260K/stories260K.gguf";

std::unique_ptr<Session> open_session() {
  SessionOptions so;
  so.n_threads = 1;
  so.n_ctx = 256;
  auto s = Session::open(test::shared_data(kModelRel), so);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(*s) : nullptr;
}

// A generator of n_slots sequences over s (a small prefill_budget spreads
// prompts over several steps).
std::unique_ptr<BatchGenerator> generator(const Session& s, int32_t n_slots, int64_t prefill_budget = 256,
                                          int64_t n_ctx = 0) {
  BatchOptions bo;
  bo.n_slots = n_slots;
  bo.prefill_budget = prefill_budget;
  bo.n_ctx = n_ctx;
  auto g = BatchGenerator::create(s, bo);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? std::move(*g) : nullptr;
}

std::vector<int32_t> tok(const Session& s, const std::string& text) {
  auto ids = s.tokenize(text, true);
  EXPECT_TRUE(ids.ok());
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

GenerateOptions greedy(int n) {
  GenerateOptions go;
  go.n_predict = n;
  go.sampler.temperature = 0;
  return go;
}

std::vector<int32_t> alone(Session& s, const std::vector<int32_t>& prompt, const GenerateOptions& go) {
  std::vector<int32_t> ids;
  GenerateStats st;
  EXPECT_TRUE(s.generate(prompt, go, [&](int32_t id, const std::string&) {
    if (id >= 0) ids.push_back(id);
    return true;
  }, &st).ok());
  return ids;
}

struct Result_ {
  std::vector<int32_t> ids;
  std::string text;
  GenerateStats stats;
  bool done = false;
};

// Adds a sequence whose tokens and end land in *r.
int64_t add(BatchGenerator& g, const std::vector<int32_t>& prompt, const GenerateOptions& go, Result_* r) {
  auto id = g.add(prompt, go, [r](int32_t id, const std::string& t) {
    if (id >= 0) r->ids.push_back(id);
    r->text += t;
    return true;
  }, [r](const GenerateStats& st) { r->stats = st; r->done = true; });
  EXPECT_TRUE(id.ok()) << id.status().message();
  return id.ok() ? *id : -1;
}

TEST(BatchGenerator, StaggeredSequencesEqualSessionAlone) {
  SLM_REQUIRE_DATA(test::shared_data(kModelRel));
  auto s = open_session();
  auto g = generator(*s, 3, 5);
  ASSERT_TRUE(g);
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Ben went to the park to play with a ball",
                                            "The cat", "A big red dog ran", "Tom was sad because"};
  std::vector<std::vector<int32_t>> ids;
  for (const auto& p : prompts) ids.push_back(tok(*s, p));
  const std::vector<int> n = {30, 12, 25, 1, 18};
  std::vector<Result_> res(prompts.size());
  // Three start together; the others join as slots free up, between steps.
  size_t next = 0;
  int steps = 0;
  for (; next < 3; ++next) add(*g, ids[next], greedy(n[next]), &res[next]);
  EXPECT_FALSE(g->has_free_slot());
  while (g->n_active() > 0 || next < prompts.size()) {
    while (g->has_free_slot() && next < prompts.size()) {
      add(*g, ids[next], greedy(n[next]), &res[next]);
      ++next;
    }
    ASSERT_TRUE(g->step().ok());
    ASSERT_LT(++steps, 500);
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_TRUE(res[i].done);
    EXPECT_EQ(res[i].ids, alone(*s, ids[i], greedy(n[i]))) << prompts[i];
    EXPECT_EQ(res[i].stats.n_prompt, static_cast<int64_t>(ids[i].size()));
    EXPECT_EQ(res[i].stats.stop_reason, res[i].ids.size() == static_cast<size_t>(n[i]) ? "length" : "eog");
  }
  // Fewer steps than one after another: the sequences shared forward passes.
  int serial = 0;
  for (size_t i = 0; i < prompts.size(); ++i) serial += static_cast<int>((ids[i].size() + 4) / 5) + n[i] - 1;
  EXPECT_LT(steps, serial);
  EXPECT_EQ(g->kv_used(), 0);
}

// Runs one sequence to its end in g; returns it.
Result_ run_one(BatchGenerator& g, const std::vector<int32_t>& prompt, const GenerateOptions& go) {
  Result_ r;
  add(g, prompt, go, &r);
  for (int i = 0; i < 500 && !r.done; ++i) EXPECT_TRUE(g.step().ok());
  EXPECT_TRUE(r.done);
  return r;
}

// Common prefix of held and prompt, at most all but the prompt's last token.
int64_t expected_reuse(const std::vector<int32_t>& held, const std::vector<int32_t>& prompt) {
  const int64_t n = std::mismatch(held.begin(), held.end(), prompt.begin(), prompt.end()).first - held.begin();
  return std::min<int64_t>(n, static_cast<int64_t>(prompt.size()) - 1);
}

TEST(BatchGenerator, PromptsStartFromTheRowsASlotHolds) {
  SLM_REQUIRE_DATA(test::shared_data(kModelRel));
  auto s = open_session();
  auto g = generator(*s, 2, 3);
  ASSERT_TRUE(g);
  const auto first = tok(*s, "Once upon a time there was a little girl");
  const Result_ r1 = run_one(*g, first, greedy(20));
  EXPECT_EQ(r1.stats.n_prompt_reused, 0);
  EXPECT_EQ(r1.ids, alone(*s, first, greedy(20)));
  // The slot holds the prompt and all but the last generated token.
  std::vector<int32_t> held = first;
  held.insert(held.end(), r1.ids.begin(), r1.ids.end() - 1);

  // The whole conversation so far and more (the last generated token was
  // never fed: its row is not there), the same prompt, a longer one, one that
  // runs into the generated tokens, one that parts early: each from the rows
  // it shares, each as a fresh prefill gives.
  const int32_t and_ = tok(*s, " and")[1];
  std::vector<int32_t> continued = first;
  continued.insert(continued.end(), r1.ids.begin(), r1.ids.end());
  continued.push_back(and_);
  std::vector<int32_t> into_generated(held.begin(), held.begin() + static_cast<long>(first.size()) + 6);
  into_generated.push_back(and_);
  const std::vector<std::vector<int32_t>> prompts = {continued, first,
                                                     tok(*s, "Once upon a time there was a little girl named Lily"),
                                                     into_generated, tok(*s, "Once upon a day")};
  EXPECT_EQ(expected_reuse(held, continued), static_cast<int64_t>(held.size()));
  for (const auto& p : prompts) {
    const int64_t want = expected_reuse(held, p);
    const Result_ r = run_one(*g, p, greedy(15));
    EXPECT_EQ(r.stats.n_prompt_reused, want);
    EXPECT_EQ(r.ids, alone(*s, p, greedy(15))) << "reused " << want;
    held = p;
    held.insert(held.end(), r.ids.begin(), r.ids.end() - 1);
  }
  EXPECT_GT(expected_reuse(first, prompts[2]), 5);

  // reuse_prefix off: all computed again, same tokens.
  GenerateOptions off = greedy(15);
  off.reuse_prefix = false;
  const Result_ r_off = run_one(*g, held, off);
  EXPECT_EQ(r_off.stats.n_prompt_reused, 0);
  EXPECT_EQ(r_off.ids, alone(*s, held, greedy(15)));
  EXPECT_EQ(g->kv_used(), 0);
}

TEST(BatchGenerator, ACancelledPromptLeavesTheRowsItWrote) {
  SLM_REQUIRE_DATA(test::shared_data(kModelRel));
  auto s = open_session();
  auto g = generator(*s, 1, 4);
  ASSERT_TRUE(g);
  const auto p = tok(*s, "Lily and Ben went to the park to play with a ball");
  Result_ a;
  const int64_t id = add(*g, p, greedy(10), &a);
  ASSERT_TRUE(g->step().ok());  // 4 prompt tokens in
  g->cancel(id);
  ASSERT_TRUE(g->step().ok());
  ASSERT_TRUE(a.done);
  const Result_ b = run_one(*g, p, greedy(10));
  EXPECT_EQ(b.stats.n_prompt_reused, 4);
  EXPECT_EQ(b.ids, alone(*s, p, greedy(10)));
}

TEST(BatchGenerator, CancelFreesTheSlotAndOthersGoOn) {
  SLM_REQUIRE_DATA(test::shared_data(kModelRel));
  auto s = open_session();
  auto g = generator(*s, 2);
  ASSERT_TRUE(g);
  const auto a_ids = tok(*s, "Once upon a time"), b_ids = tok(*s, "The dog");
  Result_ a, b;
  const int64_t a_id = add(*g, a_ids, greedy(40), &a);
  add(*g, b_ids, greedy(40), &b);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(g->step().ok());
  EXPECT_GT(g->kv_used(), 0);
  g->cancel(a_id);
  ASSERT_TRUE(g->step().ok());
  EXPECT_TRUE(a.done);
  EXPECT_EQ(a.stats.stop_reason, "cancelled");
  EXPECT_TRUE(g->has_free_slot());
  while (g->n_active() > 0) ASSERT_TRUE(g->step().ok());
  EXPECT_EQ(b.ids, alone(*s, b_ids, greedy(40)));
  EXPECT_EQ(g->kv_used(), 0);
}

TEST(BatchGenerator, ContextEndAndBadInput) {
  SLM_REQUIRE_DATA(test::shared_data(kModelRel));
  auto s = open_session();
  auto g = generator(*s, 1, 256, 16);
  ASSERT_TRUE(g);
  Result_ r;
  GenerateOptions go = greedy(100);
  go.stop_at_eog = false;
  add(*g, tok(*s, "Once upon a time"), go, &r);
  while (g->n_active() > 0) ASSERT_TRUE(g->step().ok());
  EXPECT_EQ(r.stats.stop_reason, "context");
  EXPECT_EQ(r.stats.n_prompt + r.stats.n_generated, 17);  // 16 positions fed, then one more sampled
  auto noop = [](int32_t, const std::string&) { return true; };
  auto done = [](const GenerateStats&) {};
  EXPECT_FALSE(g->add({}, go, noop, done).ok());
  EXPECT_FALSE(g->add(std::vector<int32_t>(16, 1), go, noop, done).ok());
  EXPECT_FALSE(g->add({1, 1 << 30}, go, noop, done).ok());
  ASSERT_TRUE(g->add({1}, go, noop, done).ok());
  EXPECT_FALSE(g->add({1}, go, noop, done).ok()) << "no free slot";
  BatchOptions bad;
  bad.n_slots = 0;
  EXPECT_FALSE(BatchGenerator::create(*s, bad).ok());
}

// slm bench --parallel: the same generation for N sequences in one forward pass each step.
TEST(BatchGenerator, BenchMeasuresBatchedGeneration) {
  SLM_REQUIRE_DATA(test::shared_data(kModelRel));
  BenchOptions bo;
  bo.n_prompt = 8;
  bo.n_gen = 16;
  bo.reps = 1;
  bo.n_threads = 1;
  bo.n_parallel = 4;
  auto r = run_bench(test::shared_data(kModelRel), bo);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->n_parallel, 4);
  EXPECT_GT(r->tg_batch_tps, 0);
  EXPECT_NE(r->to_text().find("over 4 sequences together"), std::string::npos) << r->to_text();
  EXPECT_NE(r->to_json().find("\"parallel\": 4"), std::string::npos) << r->to_json();
  bo.n_parallel = -1;
  EXPECT_FALSE(run_bench(test::shared_data(kModelRel), bo).ok());
}

}  // namespace
}  // namespace slm::engine
