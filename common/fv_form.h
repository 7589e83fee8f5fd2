/* Form definitions: compiling a survey's question list and validating answers against it. */
#ifndef FV_FORM_H
#define FV_FORM_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_tree.h>

/* Limits on definitions (absurd input is refused at compile time, not at validation time). */
#define FV_FORM_MAX_QUESTIONS 2000
/* confidential_gps_radius_m (confidential mode, migration 024): metres; default 1000 */
#define FV_FORM_MIN_GPS_RADIUS 1
#define FV_FORM_MAX_GPS_RADIUS 100000
#define FV_FORM_MAX_CHOICES 1000   /* per select question */
#define FV_FORM_MAX_CHOICE_LEN 256 /* bytes of one choice name */
#define FV_FORM_MAX_PATTERN 512    /* bytes of one constraint pattern */
#define FV_FORM_MAX_NAME_LEN 64    /* ^[A-Za-z_][A-Za-z0-9_]{0,63}$ (one segment of a path) */
#define FV_FORM_MAX_PATH_LEN 255   /* segments joined by '/' (XForm groups and repeats) */
/* Constraint patterns (PCRE2, docs/api/surveys-and-responses.md). Every bound below keeps the work
 * of compiling a form and of checking one submission small enough for the event loop (the
 * worst cases measured are in docs/security.md). A pattern over a compile limit is refused when
 * the form is defined (reason FV_FORM_PATTERN_TOO_COMPLEX); a check that hits a match limit
 * refuses the answer (never accepts it unchecked). */
#define FV_FORM_MAX_PATTERN_NEST 32          /* nesting depth of parentheses */
#define FV_FORM_MAX_PATTERN_COMPILED 8192    /* bytes of one compiled pattern */
#define FV_FORM_MAX_PATTERNS_COMPILED 262144 /* bytes of every compiled pattern of a form */
#define FV_FORM_MAX_PATTERNS_SOURCE 131072   /* bytes of every pattern of a form */
/* Heap one pattern's compilation may use: a pattern that would compile to more than fits fails as
 * PCRE2 allocates its code, before the costly second pass (the rest: PCRE2's parsed pattern). */
#define FV_FORM_PATTERN_COMPILE_MEMORY (FV_FORM_MAX_PATTERN_COMPILED + 16384)
#define FV_FORM_MAX_PATTERN_ANSWER 4096 /* bytes of an answer checked against a pattern */
/* PCRE2 match limit of one check, and of all the checks of one submission together: a submission
 * answering n questions that have a pattern gives each check
 * min(FV_FORM_PATTERN_MATCH_LIMIT, FV_FORM_PATTERN_BUDGET / n). */
#define FV_FORM_PATTERN_MATCH_LIMIT 5000
#define FV_FORM_PATTERN_BUDGET 10000
#define FV_FORM_PATTERN_DEPTH_LIMIT 5000 /* nested backtracking points of one check */
#define FV_FORM_PATTERN_HEAP_KIB 1024    /* backtracking memory of one check (KiB) */
/* The reason of a pattern refused for its size or complexity starts with this text. */
#define FV_FORM_PATTERN_TOO_COMPLEX "pattern too complex"
/* Unknown answer keys reported one by one before a single summary error (field ""). */
#define FV_FORM_MAX_UNKNOWN_REPORTED 100

typedef struct fv_form fv_form; /* a compiled definition; owned by the caller (fv_form_free) */

/* Field (question name, "questions[3]", or "" for the whole document) -> reason. The list owns
 * every string in it; the caller owns the list and frees it with fv_form_errors_free. Within one
 * compile or validate call each field appears at most once (it maps onto the 422 "fields"). */
typedef struct fv_form_errors {
    size_t n, cap;
    struct fv_form_error {
        char *field;
        char *reason;
    } * items;
    size_t dropped; /* errors found but not recorded because memory ran out */
} fv_form_errors;

void fv_form_errors_init(fv_form_errors *e);
/* Frees every item; e is left empty and may be reused. */
void fv_form_errors_free(fv_form_errors *e);
/* Appends copies of field and reason (borrows both). False (and e->dropped++) when out of
 * memory. */
bool fv_form_errors_add(fv_form_errors *e, const char *field, const char *reason);
/* The reason recorded for field, or NULL. Borrows: valid until e changes. */
const char *fv_form_errors_get(const fv_form_errors *e, const char *field);

/* Compiles a definition {"questions":[...]} (borrows it: nothing in the result points into the
 * tree). Returns a form the caller frees with fv_form_free, or NULL with every problem added to
 * errs: one error per bad question, field = its name, or "questions[i]" when it has no usable
 * unique name; field "questions" (or "" when definition is not an object) for the whole list. */
fv_form *fv_form_compile(yajl_val definition, fv_form_errors *errs);
/* As fv_form_compile, for a definition that was accepted and stored earlier (by an older version
 * perhaps): a pattern refused today (one the limits or PCRE2's syntax refuse) does not refuse the
 * form; its question is kept and every answer to it is refused ("fails closed") at validation.
 * Every other problem refuses the form as fv_form_compile does. */
fv_form *fv_form_compile_stored(yajl_val definition, fv_form_errors *errs);
void fv_form_free(fv_form *f);
/* Compiles a definition stored as JSON text (checked when it was stored) as
 * fv_form_compile_stored does: the form, or NULL when the text does not parse or compile, or
 * memory runs out. Caller frees. */
fv_form *fv_form_compile_text(const char *definition);
/* True when some error in e refuses a pattern for its size or complexity (its reason starts
 * with FV_FORM_PATTERN_TOO_COMPLEX): the API answers those with the code pattern_too_complex. */
bool fv_form_errors_pattern_too_complex(const fv_form_errors *e);

/* Validates an answers object (borrowed) against f. Returns the number of errors found and added
 * to errs (0 = valid); every bad field is reported, at most one error per question, in definition
 * order, then unknown keys. data not an object gives one error with field "". Null, absent, "" and
 * [] all mean "not answered". Never returns 0 for data it could not check (e.g. out of memory).
 * A question inside repeats (its name below a path some question declares as xform.repeat, as an
 * XForm's derived definition does) is answered by a list, one item per instance of the outermost
 * repeat, lists of lists inside nested ones (fv_instance.h); each item is checked as an answer
 * (required in every instance), the first bad one reported with its position ("#2: ...",
 * "#1.3: ..."); the questions of one repeat must answer the same instances; a required one left
 * out while its repeat has instances (as another question shows) is "#<first>: required". */
size_t fv_form_validate(const fv_form *f, yajl_val data, fv_form_errors *errs);

size_t fv_form_question_count(const fv_form *f);
/* Index of the question called name, or -1. */
long fv_form_find(const fv_form *f, const char *name);
/* The name of question i (borrowed from f), in definition order; NULL when i is out of range. */
const char *fv_form_question_name(const fv_form *f, size_t i);
/* Whether question i is marked confidential (false when out of range). */
bool fv_form_question_confidential(const fv_form *f, size_t i);

#endif
