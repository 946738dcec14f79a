"""Follow-up questions from the topics of sources: headings first, then phrases that stand together in the text."""

from __future__ import annotations

from mmrag.core.follow_ups import en_key_phrases, follow_up_questions, headings, zh_keywords

PDF_CHUNK = (
    "It is a good practice to log shell activities. 1.4.9 Recording the shell activities The output of the shell "
    "command may roll off your screen. 9.7.6 Making the ISO9660 image file . . . . . 163"
)


def test_headings_of_pdf_text_and_title_lines():
    assert headings(PDF_CHUNK) == ["Recording the shell activities", "Making the ISO9660 image file"]
    lines = "Coolant replacement\nThe coolant is replaced every two years.\nDebian Reference xxiii\nTip"
    assert headings(lines) == ["Coolant replacement"]  # not a page header, not a sentence, not one word


def test_key_phrases_are_words_that_stand_together():
    text = (
        "The relief valve opens at 93 kPa. Inspect the relief valve every six months; a stuck relief valve "
        "must be replaced by a certified technician."
    )
    phrases = en_key_phrases(text)
    assert phrases[0] == "relief valve"  # said three times
    assert all(p.lower() in text.lower() for p in phrases)
    assert "certified technician" in phrases  # a pair said once beats a lone word said once


def test_chinese_keywords_are_chinese_nouns():
    words = zh_keywords("使用 apt-get 安装软件包时，软件包的依赖关系会被自动解决。dpkg 是底层的软件包管理工具。")
    assert words and "软件包" in words and all(not w.isascii() for w in words)


def test_questions_in_the_question_language_never_repeat_it():
    sources = [
        ("Cooling system\nThe relief valve opens at 93 kPa.", True),
        ("Coolant replacement\nThe coolant is replaced every two years.", False),
        ("Radiator cap\nNever open the radiator cap while hot.", False),
    ]
    asked = "At what pressure does the relief valve open?"
    out = follow_up_questions(asked, "en", sources)
    assert out == [
        "What does the section “Coolant replacement” explain?",  # uncited sources first
        "What does the section “Radiator cap” explain?",
        "What does the section “Cooling system” explain?",
    ]
    assert follow_up_questions("Coolant replacement", "en", sources[1:2]) == []  # only what was asked
    zh = follow_up_questions("冷却液多久更换一次？", "zh", [("散热器盖\n发动机热的时候不要打开散热器盖。", False)])
    assert zh[0] == "“散热器盖”一节讲了什么？" and "关于“发动机”，文档里有哪些说明？" in zh
    assert not any("“散热器”" in q for q in zh)  # part of the heading already offered
