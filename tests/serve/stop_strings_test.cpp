#include "slm/serve/stop_strings.h"

#include <gtest/gtest.h>

namespace slm::serve {
namespace {

// Feeds pieces; returns everything given out and whether a stop was hit.
std::string run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces, bool* stopped) {
  StopStringFilter f(stops);
  std::string out;
  *stopped = false;
  for (const auto& p : pieces) {
    if (f.push(p, &out)) {
      *stopped = true;
      return out;
    }
  }
  return out + f.flush();
}

TEST(StopStrings, NoStopsPassesEverything) {
  bool stopped;
  EXPECT_EQ(run({}, {"a", "b", "c"}, &stopped), "abc");
  EXPECT_FALSE(stopped);
}

TEST(StopStrings, CutsAcrossPieces) {
  bool stopped;
  EXPECT_EQ(run({"END"}, {"hello E", "N", "D more"}, &stopped), "hello ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(run({"END"}, {"hello E", "N", "x"}, &stopped), "hello ENx");
  EXPECT_FALSE(stopped);
}

TEST(StopStrings, EarliestStopWins) {
  bool stopped;
  EXPECT_EQ(run({"cd", "b"}, {"abcd"}, &stopped), "a");
  EXPECT_TRUE(stopped);
}

TEST(StopStrings, HoldsBackOnlyAPossiblePrefix) {
  StopStringFilter f({"\n\n"});
  std::string out;
  EXPECT_FALSE(f.push("one\n", &out));
  EXPECT_EQ(out, "one");  // the newline might start the stop string
  EXPECT_FALSE(f.push("two", &out));
  EXPECT_EQ(out, "one\ntwo");
  EXPECT_TRUE(f.push("\n\nthree", &out));
  EXPECT_EQ(out, "one\ntwo");
}

TEST(StopStrings, EmptyStopIsIgnored) {
  bool stopped;
  EXPECT_EQ(run({""}, {"abc"}, &stopped), "abc");
  EXPECT_FALSE(stopped);
}

}  // namespace
}  // namespace slm::serve
