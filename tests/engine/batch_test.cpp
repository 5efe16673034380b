// BatchGenerator against Session: sequences decoded together in one batch give
// the same greedy tokens as each decoded alone by Session (a separate code path).
#include "slm/engine/batch.h"

#include "slm/engine/bench.h"

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
  BatchOptions bo;
  bo.n_slots = 3;
  bo.prefill_budget = 5;  // small: prompts take several steps, mixed with decoding
  auto g = BatchGenerator::create(*s, bo);
  ASSERT_TRUE(g.ok()) << g.status().message();
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Ben went to the park to play with a ball",
                                            "The cat", "A big red dog ran", "Tom was sad because"};
  std::vector<std::vector<int32_t>> ids;
  for (const auto& p : prompts) ids.push_back(tok(*s, p));
  const std::vector<int> n = {30, 12, 25, 1, 18};
  std::vector<Result_> res(prompts.size());
  // Three start together; the others join as slots free up, between steps.
  size_t next = 0;
  int steps = 0;
  for (; next < 3; ++next) add(**g, ids[next], greedy(n[next]), &res[next]);
  EXPECT_FALSE((*g)->has_free_slot());
  while ((*g)->n_active() > 0 || next < prompts.size()) {
    while ((*g)->has_free_slot() && next < prompts.size()) {
      add(**g, ids[next], greedy(n[next]), &res[next]);
      ++next;
    }
    ASSERT_TRUE((*g)->step().ok());
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
  EXPECT_EQ((*g)->kv_used(), 0);
}

TEST(BatchGenerator, CancelFreesTheSlotAndOthersGoOn) {
  SLM_REQUIRE_DATA(test::shared_data(kModelRel));
  auto s = open_session();
  BatchOptions bo;
  bo.n_slots = 2;
  auto g = BatchGenerator::create(*s, bo);
  ASSERT_TRUE(g.ok());
  const auto a_ids = tok(*s, "Once upon a time"), b_ids = tok(*s, "The dog");
  Result_ a, b;
  const int64_t a_id = add(**g, a_ids, greedy(40), &a);
  add(**g, b_ids, greedy(40), &b);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*g)->step().ok());
  EXPECT_GT((*g)->kv_used(), 0);
  (*g)->cancel(a_id);
  ASSERT_TRUE((*g)->step().ok());
  EXPECT_TRUE(a.done);
  EXPECT_EQ(a.stats.stop_reason, "cancelled");
  EXPECT_TRUE((*g)->has_free_slot());
  while ((*g)->n_active() > 0) ASSERT_TRUE((*g)->step().ok());
  EXPECT_EQ(b.ids, alone(*s, b_ids, greedy(40)));
  EXPECT_EQ((*g)->kv_used(), 0);
}

TEST(BatchGenerator, ContextEndAndBadInput) {
  SLM_REQUIRE_DATA(test::shared_data(kModelRel));
  auto s = open_session();
  BatchOptions bo;
  bo.n_slots = 1;
  bo.n_ctx = 16;
  auto g = BatchGenerator::create(*s, bo);
  ASSERT_TRUE(g.ok());
  Result_ r;
  GenerateOptions go = greedy(100);
  go.stop_at_eog = false;
  add(**g, tok(*s, "Once upon a time"), go, &r);
  while ((*g)->n_active() > 0) ASSERT_TRUE((*g)->step().ok());
  EXPECT_EQ(r.stats.stop_reason, "context");
  EXPECT_EQ(r.stats.n_prompt + r.stats.n_generated, 17);  // 16 positions fed, then one more sampled
  auto noop = [](int32_t, const std::string&) { return true; };
  auto done = [](const GenerateStats&) {};
  EXPECT_FALSE((*g)->add({}, go, noop, done).ok());
  EXPECT_FALSE((*g)->add(std::vector<int32_t>(16, 1), go, noop, done).ok());
  EXPECT_FALSE((*g)->add({1, 1 << 30}, go, noop, done).ok());
  ASSERT_TRUE((*g)->add({1}, go, noop, done).ok());
  EXPECT_FALSE((*g)->add({1}, go, noop, done).ok()) << "no free slot";
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
