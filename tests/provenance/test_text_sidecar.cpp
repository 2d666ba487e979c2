// Text that a byte-level model sampled may hold any bytes; with its sidecar manifest it is
// still text to verify and detect (a regression: such files were "not a file imagine writes").
#include <gtest/gtest.h>

#include <filesystem>

#include "../support/temp_dir.h"
#include "core/error.h"
#include "core/files.h"
#include "provenance/detect.h"
#include "provenance/output.h"
#include "provenance/verify.h"

TEST(TextSidecar, NonUtf8TextWithItsManifestVerifiesAndIsDetectedAsText) {
  const std::string dir = imagine::testing::make_temp_dir("imagine_sidecar_");
  ASSERT_FALSE(dir.empty());
  imagine::OutputPolicy policy;  // creates the (test) watermark key that detect reads
  const imagine::OutputWriter writer(policy);
  imagine::GenerationRecord rec;
  rec.kind = "text";
  rec.verb = "generate";
  const std::string text = std::string("caf\xc3 \xff\xfe", 8) + std::string(1, '\0') + "tail\n";
  const std::string path = dir + "/out.txt";
  writer.write_text(path, text, rec);
  const imagine::VerifyReport v = imagine::verify_file(path, {});
  EXPECT_EQ(v.type, "text");
  EXPECT_TRUE(v.intact()) << v.summary();
  std::string changed = text;
  changed[5] = 'x';
  imagine::write_file_atomic(path, changed);
  EXPECT_FALSE(imagine::verify_file(path, {}).intact()) << "a changed byte breaks the hash";
  const imagine::DetectReport d = imagine::detect_file(path, {});
  EXPECT_EQ(d.type, "text");
  EXPECT_TRUE(d.manifest);
  // Without its sidecar the same bytes are not text.
  std::filesystem::remove(path + ".provenance.json");
  EXPECT_THROW(imagine::verify_file(path, {}), imagine::Error);
  std::filesystem::remove_all(dir);
}
