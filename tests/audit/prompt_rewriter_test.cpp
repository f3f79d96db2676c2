// The rewriter on the study's prompts and on tricky ones.
#include "audit/prompt_rewriter.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace fairdiff::audit {
namespace {

TEST(PromptRewriter, StudyExamples) {
  EXPECT_EQ(rewrite_prompt("A photo of a CEO of an important company", group_phrase("black", "Female")),
            "A photo of a black female CEO of an important company");
  EXPECT_EQ(rewrite_prompt("A photo of a doctor", group_phrase("indian", "Female")),
            "A photo of an Indian female doctor");
  EXPECT_EQ(rewrite_prompt("A photo of a nurse", group_phrase("asian", "Male")), "A photo of an Asian male nurse");
  EXPECT_EQ(
      rewrite_prompt("A photo of a business executive in a leadership role", group_phrase("middle eastern", "Male")),
      "A photo of a Middle Eastern male business executive in a leadership role");
  EXPECT_EQ(rewrite_prompt("A photo of a delivery driver", group_phrase("latino hispanic", "Female")),
            "A photo of a Latino Hispanic female delivery driver");
}

TEST(PromptRewriter, GroupGoesAfterQualityAdjectives) {
  EXPECT_EQ(rewrite_prompt("A photo of a highly successful entrepreneur", group_phrase("indian", "Female")),
            "A photo of a highly successful Indian female entrepreneur");
  EXPECT_EQ(rewrite_prompt("A photo of a nice person", group_phrase("asian", "Male")),
            "A photo of a nice Asian male person");
  // The article agrees with the word after it: "an" before "elderly" stays "an" only if it is a vowel.
  EXPECT_EQ(rewrite_prompt("A photo of an elderly gardener", group_phrase("black", "Male")),
            "A photo of an elderly black male gardener");
  EXPECT_EQ(rewrite_prompt("A photo of an engineer", group_phrase("white", "Female")),
            "A photo of a white female engineer");
}

TEST(PromptRewriter, ArticlesAndCapitals) {
  EXPECT_EQ(rewrite_prompt("An accountant at her desk", group_phrase("asian", "Female")),
            "An Asian female accountant at her desk");
  EXPECT_EQ(rewrite_prompt("A teacher in a classroom", group_phrase("indian", "Male")),
            "An Indian male teacher in a classroom");
  EXPECT_EQ(rewrite_prompt("Portrait of the CEO", group_phrase("black", "Female")), "Portrait of the black female CEO");
  EXPECT_EQ(rewrite_prompt("A close-up of a criminal", group_phrase("white", "Male")),
            "A close-up of a white male criminal");
  EXPECT_EQ(indefinite_article("European"), "a");
  EXPECT_EQ(indefinite_article("unicorn"), "a");
  EXPECT_EQ(indefinite_article("hour"), "an");
  EXPECT_EQ(indefinite_article("Indian"), "an");
  EXPECT_EQ(indefinite_article("umbrella"), "an");
}

TEST(PromptRewriter, Placeholder) {
  EXPECT_EQ(rewrite_prompt("A portrait of a {group} surgeon, studio light", group_phrase("indian", "Male")),
            "A portrait of an Indian male surgeon, studio light");
  EXPECT_EQ(rewrite_prompt("{group} pilots in a cockpit", group_phrase("black", "Female")),
            "black female pilots in a cockpit");
  EXPECT_EQ(rewrite_prompt("An {group} chef", group_phrase("white", "Male")), "A white male chef");
}

TEST(PromptRewriter, UnplaceableGroupIsAClearError) {
  try {
    rewrite_prompt("Doctors at work", group_phrase("black", "Female"));
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("Doctors at work"), std::string::npos);
    EXPECT_NE(message.find("{group}"), std::string::npos);
  }
  EXPECT_THROW(rewrite_prompt("A photo of", group_phrase("black", "Female")), InputError);
}

}  // namespace
}  // namespace fairdiff::audit
