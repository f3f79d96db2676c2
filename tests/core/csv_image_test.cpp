#include <gtest/gtest.h>

#include <fstream>

#include "core/csv.h"
#include "core/error.h"
#include "core/image.h"
#include "core/strings.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

TEST(Csv, ParsesQuotesAndKeepsLineNumbers) {
  CsvTable t = parse_csv(
      "prompt_id,prompt\r\nceo,\"A photo of a CEO, \"\"important\"\"\"\n\nnurse,\"two\nlines\"\nx,y\n", "p.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"prompt_id", "prompt"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0].fields[1], "A photo of a CEO, \"important\"");
  EXPECT_EQ(t.rows[1].fields[1], "two\nlines");
  EXPECT_EQ(t.rows[1].line, 4);
  EXPECT_EQ(t.rows[2].line, 6);
  EXPECT_EQ(t.require_column("prompt"), 1);
}

TEST(Csv, ErrorsNameFileAndLine) {
  try {
    parse_csv("a,b\n1,2\n3\n", "bad.csv");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv:3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_csv("a,b\n\"1,2\n", "q.csv"), InputError);
  EXPECT_THROW(parse_csv("", "empty.csv"), InputError);
  CsvTable t = parse_csv("a,b\n", "h.csv");
  EXPECT_THROW(t.require_column("c"), InputError);
}

// Text is UTF-8 only: a stray byte (e.g. Latin-1) is an error with file, line and column, before any output.
TEST(Csv, NonUtf8IsAnErrorNamingFileLineAndColumn) {
  try {
    parse_csv("prompt_id,prompt\nceo,A photo of a \xFF CEO\n", "prompts.csv");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("prompts.csv:2: byte 0xFF at column 18 is not UTF-8"), std::string::npos)
        << e.what();
  }
  // Valid UTF-8 of every length, and the byte-order mark, are read as they are.
  const CsvTable t = parse_csv("\xEF\xBB\xBFname\nK\xC3\xA4rkk\xC3\xA4inen \xE2\x82\xAC \xF0\x9F\x98\x80\n", "u.csv");
  EXPECT_EQ(t.rows.at(0).fields.at(0), "K\xC3\xA4rkk\xC3\xA4inen \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(first_invalid_utf8("ok \xC3\xA4"), std::string::npos);
  EXPECT_EQ(first_invalid_utf8("a\xC0\xAF"), 1u);         // overlong '/'
  EXPECT_EQ(first_invalid_utf8("ab\xED\xA0\x80"), 2u);    // UTF-16 surrogate
  EXPECT_EQ(first_invalid_utf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(first_invalid_utf8("x\xE2\x82"), 1u);         // truncated
  EXPECT_EQ(first_invalid_utf8("\x80"), 0u);              // lone continuation byte
  EXPECT_EQ(first_invalid_utf8("\xE0\x80\xAF"), 0u);      // overlong 3-byte form
}

TEST(Csv, EscapesRoundTrip) {
  std::vector<std::string> fields{"plain", "with,comma", "with \"quote\"", "new\nline"};
  CsvTable t = parse_csv("a,b,c,d\n" + csv_line(fields), "r.csv");
  EXPECT_EQ(t.rows[0].fields, fields);
}

TEST(Image, PngRoundTripIsExact) {
  auto dir = test::scratch_dir("png_roundtrip");
  Image image;
  image.width = 5;
  image.height = 3;
  image.channels = 3;
  for (int i = 0; i < 5 * 3 * 3; ++i) image.pixels.push_back(static_cast<uint8_t>(i * 17));
  write_png(dir / "a.png", image);
  Image back = read_image(dir / "a.png");
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.pixels, image.pixels);
  EXPECT_EQ(encode_png(image), encode_png(back));
}

TEST(Image, ReadsRealJpegAndRejectsCorruptFiles) {
  Image face = read_image(test::shared_dir() / "faces" / "fairface_margin125" / "fairface_0001.jpg");
  EXPECT_EQ(face.width, 448);
  EXPECT_EQ(face.height, 448);
  EXPECT_EQ(face.channels, 3);
  auto dir = test::scratch_dir("corrupt_image");
  {
    std::ofstream out(dir / "x.png", std::ios::binary);
    out << "\x89PNG\r\n\x1a\n garbage";
  }
  EXPECT_THROW(read_image(dir / "x.png"), InputError);
  {
    std::ofstream out(dir / "t.txt");
    out << "hello";
  }
  EXPECT_THROW(read_image(dir / "t.txt"), InputError);
  EXPECT_FALSE(looks_like_image_file(dir / "t.txt"));
}

}  // namespace
}  // namespace fairdiff
