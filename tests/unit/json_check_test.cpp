// Regression tests for JSON validation: inputs the fault tests found.
#include <gtest/gtest.h>

#include <cerrno>
#include <sstream>
#include <string>

#include "store/json_check.h"
#include "store/store.h"

namespace itemfs::store {
namespace {

Status both(const std::string& bytes, Status* stream_status) {
  std::istringstream in(bytes);
  *stream_status = validate_json(in);
  return validate_json_bytes(bytes);
}

// nlohmann's lexer ends the input at a NUL byte, which let a document with a
// NUL and anything after it through.
TEST(JsonCheckTest, NulByteAnywhereIsRefused) {
  using namespace std::string_literals;
  for (std::string bad : {"{\"a\":1}\0"s, "{\"a\":1}\0garbage"s, "[1]\0[2]"s, "[1, 2]\n\0\n"s, "\0"s}) {
    Status from_stream;
    Status from_bytes = both(bad, &from_stream);
    EXPECT_EQ(from_bytes.code, EINVAL) << bad.size();
    EXPECT_EQ(from_stream.code, EINVAL) << bad.size();
  }
  Status from_stream;
  Status from_bytes = both("[1, 2]\n\0\n"s, &from_stream);
  EXPECT_NE(from_bytes.message.find("line 2, column 1 (byte 8): a NUL byte"), std::string::npos) << from_bytes.message;
  EXPECT_EQ(from_stream.message, from_bytes.message);
  // A NUL inside a string is a raw control character: refused as before.
  EXPECT_EQ(validate_json_bytes("[\"a\0b\"]"s).code, EINVAL);
  // An escaped one is fine.
  EXPECT_TRUE(validate_json_bytes("[\"a\\u0000b\"]").ok());
}

TEST(JsonCheckTest, NulAfterALargeDocumentIsRefusedFromAStream) {
  std::string big = "[\"" + std::string(3 << 20, 'x') + "\"]";
  std::istringstream ok(big);
  EXPECT_TRUE(validate_json(ok).ok());
  std::istringstream bad(big + std::string(1, '\0') + "tail");
  Status status = validate_json(bad);
  EXPECT_EQ(status.code, EINVAL);
  EXPECT_NE(status.message.find("(byte " + std::to_string(big.size() + 1) + ")"), std::string::npos) << status.message;
}

TEST(JsonCheckTest, NumberOverflowMessageHasNoLibraryPrefix) {
  Status status = validate_json_bytes("[1e999999]");
  EXPECT_EQ(status.code, EINVAL);
  EXPECT_EQ(status.message.find("[json.exception"), std::string::npos) << status.message;
  EXPECT_NE(status.message.find("number overflow"), std::string::npos) << status.message;
}

}  // namespace
}  // namespace itemfs::store
