#include "sluice/core/durable_dir.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::StatusIs;

class DurableDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = std::filesystem::path(::testing::TempDir()) /
            fmt::format("sluice_durable_dir_{}_{}", info->name(), getpid());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string Path(const std::string& rel) const { return (root_ / rel).string(); }

  std::filesystem::path root_;
};

TEST_F(DurableDirTest, CreatesEveryMissingDirectoryOutermostFirst) {
  ASSERT_OK_AND_ASSIGN(auto created, CreateDirectoriesDurably(Path("a/b/c")));
  EXPECT_THAT(created, ElementsAre(Path("a"), Path("a/b"), Path("a/b/c")));
  EXPECT_TRUE(std::filesystem::is_directory(Path("a/b/c")));
  // Again: nothing to create. A trailing slash names the same directory.
  ASSERT_OK_AND_ASSIGN(created, CreateDirectoriesDurably(Path("a/b/c/")));
  EXPECT_TRUE(created.empty());
  ASSERT_OK_AND_ASSIGN(created, CreateDirectoriesDurably(Path("a/b/d/")));
  EXPECT_THAT(created, ElementsAre(Path("a/b/d")));
}

TEST_F(DurableDirTest, AFileInTheWayIsAnErrorNamingIt) {
  std::ofstream(Path("file")) << "x";
  EXPECT_THAT(CreateDirectoriesDurably(Path("file/sub")),
              StatusIs(StatusCode::kIOError, AllOf(HasSubstr("creating directory " + Path("file")),
                                                   HasSubstr("Not a directory"))));
}

TEST_F(DurableDirTest, FsyncOfAMissingDirectoryNamesIt) {
  EXPECT_OK(FsyncDirectory(root_.string()));
  EXPECT_THAT(FsyncDirectory(Path("missing")),
              StatusIs(StatusCode::kIOError, HasSubstr("opening directory " + Path("missing"))));
}

}  // namespace
}  // namespace sluice
