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
    OPENSSL_cleanse(copy, len);
    free(copy);

    double lg = bits * log10(2.0);
    out->guesses_log10 = round(lg * 100.0) / 100.0;
    out->score = lg < 3 ? 0 : lg < 6 ? 1 : lg < 8 ? 2 : lg < 10 ? 3 : 4;

    bool user = false, dict = false, leet = false, repeat = false, seq = false, spatial = false,
         date = false, whole_dict = false;
    for (ZxcMatch_t *m = info; m; m = m->Next) {
        int t = (int)m->Type & ~MULTIPLE_MATCH;
        switch (t) {
        case USER_MATCH:
        case USER_LEET_MATCH: user = true; break;
        case DICTIONARY_MATCH:
        case DICT_LEET_MATCH:
            dict = true;
            if (t == DICT_LEET_MATCH) leet = true;
            if (m->Length == (int)len) whole_dict = true;
            break;
        case REPEATS_MATCH: repeat = true; break;
        case SEQUENCE_MATCH: seq = true; break;
        case SPATIAL_MATCH: spatial = true; break;
        case DATE_MATCH:
        case YEAR_MATCH: date = true; break;
        default: break;
        }
    }
    ZxcvbnFreeInfo(info);
    for (int i = 0; i < 3; i++) free(bufs[i]);

    if (out->score >= 3) return 0;
    if (user) out->warning = "This password contains your name or email address.";
    else if (whole_dict) out->warning = "This is a very common password or word.";
    else if (spatial) out->warning = "Straight rows or patterns of keys are easy to guess.";
    else if (repeat) out->warning = "Repeated characters or words are easy to guess.";
    else if (seq) out->warning = "Sequences like abc or 6543 are easy to guess.";
    else if (date) out->warning = "Dates and years are easy to guess.";
    else if (dict) out->warning = "Common words are easy to guess.";
    else out->warning = "This password is too short or too simple.";
    suggest(out, "Use a few words, avoid common phrases.");
    if (user) suggest(out, "Avoid your name and email address.");
    if (leet) suggest(out, "Predictable substitutions like '@' instead of 'a' don't help very much.");
    if (spatial) suggest(out, "Use a longer keyboard pattern with more turns.");
    if (repeat) suggest(out, "Avoid repeated words and characters.");
    if (seq) suggest(out, "Avoid sequences.");
    if (date) suggest(out, "Avoid dates and years that are associated with you.");
    suggest(out, "Add another word or two. Uncommon words are better.");
    return 0;
}
