/* Password strength estimate over libzxcvbn (see fv_strength.h). */
#include "fv_strength.h"

#include <ctype.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zxcvbn.h>

#define MAX_WORDS 12

static void suggest(fv_strength *s, const char *text)
{
    for (int i = 0; i < s->nsuggestions; i++)
        if (strcmp(s->suggestions[i], text) == 0) return;
    if (s->nsuggestions < FV_STRENGTH_MAX_SUGGESTIONS) s->suggestions[s->nsuggestions++] = text;
}

/* Splits a copy of text (owned by *buf, caller frees) into lower-case words of 3+ characters
 * at non-alphanumerics and appends them to words[]. */
static int split_words(const char *text, char **buf, const char **words, int n)
{
    if (!text || !*text || n >= MAX_WORDS) return n;
    char *c = strdup(text);
    if (!c) return n;
    *buf = c;
    for (char *p = c; *p; p++) *p = (char)tolower((unsigned char)*p);
    char *save = NULL;
    for (char *w = strtok_r(c, " .@_+-'\t", &save); w && n < MAX_WORDS;
         w = strtok_r(NULL, " .@_+-'\t", &save))
        if (strlen(w) >= 3) words[n++] = w;
    return n;
}

static bool all_same(const char *t, int n)
{
    for (int i = 1; i < n; i++)
        if (t[i] != t[0]) return false;
    return true;
}

static bool all_digits(const char *t, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)t[i])) return false;
    return true;
}

/* Case hints for a dictionary match's token t[0..n) (zxcvbn's START_UPPER and ALL_UPPER). */
static void case_hints(fv_strength *s, const char *t, int n)
{
    bool upper_first = n > 0 && isupper((unsigned char)t[0]), lower_rest = true, any_lower = false;
    for (int i = 1; i < n; i++)
        if (isupper((unsigned char)t[i])) lower_rest = false;
    for (int i = 0; i < n; i++)
        if (islower((unsigned char)t[i])) any_lower = true;
    if (upper_first && lower_rest && n > 1) suggest(s, "Capitalization doesn't help very much.");
    else if (!any_lower && upper_first)
        suggest(s, "All-uppercase is almost as easy to guess as all-lowercase.");
}

/* zxcvbn's feedback (feedback.coffee): the warning and suggestions come from the longest match
 * of the sequence libzxcvbn chose, so each warning names the pattern that made the password
 * weak (a "1" read as a substitution of "l" after "password" says nothing about password1, and
 * "aaaaaaaa" is a repeat, not a common word). zxcvbn-c does not say which dictionary a word is
 * from (common passwords, English words and names are one list), so its warnings name all three.
 * pw is the evaluated text (borrowed), info libzxcvbn's matches. */
static void feedback(fv_strength *s, const char *pw, const ZxcMatch_t *info)
{
    const ZxcMatch_t *longest = NULL;
    int nmatches = 0;
    bool user = false;
    for (const ZxcMatch_t *m = info; m; m = m->Next) {
        nmatches++;
        int t = (int)m->Type & ~MULTIPLE_MATCH;
        if (t == USER_MATCH || t == USER_LEET_MATCH) user = true;
        if (!longest || m->Length > longest->Length) longest = m;
    }
    suggest(s, "Add another word or two. Uncommon words are better.");
    if (!longest) {
        s->warning = "This password is too short or too simple.";
        return;
    }
    int type = (int)longest->Type & ~MULTIPLE_MATCH;
    bool repeated = (int)longest->Type & MULTIPLE_MATCH;
    const char *tok = pw + longest->Begin;
    int n = longest->Length;
    bool sole = nmatches == 1;
    if (repeated || type == REPEATS_MATCH) {
        s->warning = all_same(tok, n) ? "Repeats like \"aaa\" are easy to guess."
                                      : "Repeats like \"abcabcabc\" are only slightly harder to "
                                        "guess than \"abc\".";
        suggest(s, "Avoid repeated words and characters.");
        return;
    }
    switch (type) {
    case USER_MATCH:
    case USER_LEET_MATCH:
        s->warning = "This password contains your name or email address.";
        suggest(s, "Avoid your name and email address.");
        if (type == USER_LEET_MATCH)
            suggest(s, "Predictable substitutions like '@' instead of 'a' don't help very much.");
        return;
    case DICTIONARY_MATCH:
    case DICT_LEET_MATCH:
        s->warning = sole && type == DICTIONARY_MATCH
                         ? "This is a very common password, word or name."
                         : "This is similar to a commonly used password, word or name.";
        case_hints(s, tok, n);
        if (type == DICT_LEET_MATCH)
            suggest(s, "Predictable substitutions like '@' instead of 'a' don't help very much.");
        break;
    case SPATIAL_MATCH:
        s->warning = "Straight rows and short patterns of keys are easy to guess.";
        suggest(s, "Use a longer keyboard pattern with more turns.");
        break;
    case SEQUENCE_MATCH:
        s->warning = "Sequences like abc or 6543 are easy to guess.";
        suggest(s, "Avoid sequences.");
        break;
    case YEAR_MATCH:
    case DATE_MATCH:
        s->warning = type == YEAR_MATCH || (n == 4 && all_digits(tok, n))
                         ? "Years are easy to guess."
                         : "Dates are often easy to guess.";
        suggest(s, "Avoid dates and years that are associated with you.");
        break;
    default: s->warning = "This password is too short or too simple."; break;
    }
    if (user) suggest(s, "Avoid your name and email address.");
}

int fv_strength_estimate(const char *pw, size_t len, const char *email, const char *name,
                         fv_strength *out)
{
    memset(out, 0, sizeof *out);
    out->warning = "";
    if (len > FV_STRENGTH_MAX_EVAL) len = FV_STRENGTH_MAX_EVAL;
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, pw, len);
    copy[len] = '\0'; /* an embedded NUL just ends what is evaluated */

    char *bufs[3] = {NULL, NULL, NULL};
    const char *words[MAX_WORDS + 2];
    int n = 0;
    if (email && *email && n < MAX_WORDS) words[n++] = email;
    n = split_words(email, &bufs[0], words, n);
    n = split_words(name, &bufs[1], words, n);
    words[n] = NULL;

    ZxcMatch_t *info = NULL;
    double bits = ZxcvbnMatch(copy, words, &info);

    double lg = bits * log10(2.0);
    out->guesses_log10 = round(lg * 100.0) / 100.0;
    out->score = lg < 3 ? 0 : lg < 6 ? 1 : lg < 8 ? 2 : lg < 10 ? 3 : 4;
    if (out->score < 3) feedback(out, copy, info);
    ZxcvbnFreeInfo(info);
    OPENSSL_cleanse(copy, len);
    free(copy);
    for (int i = 0; i < 3; i++) free(bufs[i]);
    return 0;
}
