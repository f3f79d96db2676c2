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
  // A first field that starts with a byte-order mark is quoted, so that it is not read back as the file's BOM
  // (found by fuzz/csv_fuzzer.cpp).
  const std::vector<std::string> header{"\xEF\xBB\xBFid", "text"};
  EXPECT_EQ(csv_line(header), "\"\xEF\xBB\xBFid\",text\n");
  EXPECT_EQ(parse_csv(csv_line(header) + "1,2\n", "bom.csv").header, header);
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

// CRC-32 (PNG's chunk checksum), to patch a real PNG's IHDR.
uint32_t crc32_of(const uint8_t* data, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= data[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

void put_be32(std::vector<uint8_t>& bytes, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

// Issue 15 item 6: a 20000x20000 image aborted a folder's analysis ("can't allocate 4800000000 bytes"). The header's
// size is checked against a pixel limit before any pixel memory is allocated; the error names the file and sizes.
TEST(Image, HeaderOverThePixelLimitIsRefusedBeforeDecoding) {
  std::vector<uint8_t> png = encode_png(Image{4, 4, 3, std::vector<uint8_t>(48, 100)});
  ASSERT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  put_be32(png, 16, 20000);  // width
  put_be32(png, 20, 20000);  // height
  put_be32(png, 29, crc32_of(png.data() + 12, 17));
  try {
    decode_image(png, "huge.png");
    FAIL() << "a 400-megapixel header was decoded";
  } catch (const InputError& e) {
    EXPECT_NE(
        std::string(e.what()).find("image huge.png is 20000x20000 = 400000000 pixels, over the limit of 100000000"),
        std::string::npos)
        << e.what();
  }
  // The limit is a parameter: a real 4x4 image over a limit of 15 pixels is refused, under 16 decoded.
  const std::vector<uint8_t> small = encode_png(Image{4, 4, 3, std::vector<uint8_t>(48, 100)});
  EXPECT_THROW(decode_image(small, "small.png", 15), InputError);
  EXPECT_EQ(decode_image(small, "small.png", 16).width, 4);
  const std::vector<uint8_t> jpeg = encode_jpeg(Image{8, 8, 3, std::vector<uint8_t>(192, 100)}, 90);
  EXPECT_THROW(decode_image(jpeg, "small.jpg", 63), InputError);
  EXPECT_EQ(decode_image(jpeg, "small.jpg", 64).height, 8);
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
