#include "sluice/core/dynamic_library.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>

#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::StatusIs;

DynamicLibrary& Zlib() {
  static DynamicLibrary library("libz.so.1", "zlib1g");
  return library;
}

TEST(DynamicLibraryTest, AMissingLibraryIsAnErrorNamingThePackageToInstall) {
  DynamicLibrary missing("libsluice-no-such-library.so.7", "sluice-no-such-package");
  EXPECT_THAT(missing.Load(),
              StatusIs(StatusCode::kNotFound,
                       AllOf(HasSubstr("cannot load libsluice-no-such-library.so.7"),
                             HasSubstr("apt-get install -y sluice-no-such-package"))));
  // Asked again, the same answer (it is tried once).
  EXPECT_THAT(missing.Load(), StatusIs(StatusCode::kNotFound, HasSubstr("sluice-no-such-package")));
}

TEST(DynamicLibraryTest, AFunctionIsLookedUpWithItsHeadersType) {
  ASSERT_OK(Zlib().Load());
  // zlibVersion through the macro: a pointer of the type zlib.h declares, the library's own.
  const char* (*version)() = SLUICE_DYNAMIC_FN(Zlib(), zlibVersion);
  ASSERT_NE(version, nullptr);
  EXPECT_STREQ(version(), zlibVersion());
  // A function with arguments, called through it.
  const char text[] = "sluice";
  const uLong crc = SLUICE_DYNAMIC_FN(Zlib(), crc32)(0, reinterpret_cast<const Bytef*>(text),
                                                     static_cast<uInt>(std::strlen(text)));
  EXPECT_EQ(crc, crc32(0, reinterpret_cast<const Bytef*>(text), 6));
}

TEST(DynamicLibraryDeathTest, AFunctionTheLibraryLacksEndsTheProcessNamingIt) {
  EXPECT_DEATH(Zlib().Symbol("sluice_no_such_function"),
               "libz.so.1 has no function sluice_no_such_function");
  DynamicLibrary missing("libsluice-no-such-library.so.7", "sluice-no-such-package");
  EXPECT_DEATH(missing.Symbol("f"), "apt-get install -y sluice-no-such-package");
}

}  // namespace
}  // namespace sluice
