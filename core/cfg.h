/*
 * Configuration documents (n3.json, plan files) read by core/json's strict
 * RFC 8259 parser into cJSON trees, with the position of every key and value
 * recorded by the same pass, so that every error names file:line:column, the
 * key path ("steps[2].timeout_seconds") and what to do. Unknown keys are
 * errors with a did-you-mean suggestion; duplicate keys are errors; a file
 * larger than the limit, empty, holding a NUL byte, not valid UTF-8 or not
 * exactly JSON (a leading zero, a raw tab in a string, \u0000, a lone
 * surrogate: see core/json.h) is refused with its position and what is wrong.
 *
 * Error messages look like:
 *   plan.json:12:7: steps[1].max_concurency: unknown key; did you mean "max_concurrency"?
 *   plan.json:3:14: timeout_seconds: expected a number, got a string
 *   plan.json:1:1: the file is empty; a plan is a JSON object, see docs/plan.md
 */
#ifndef N3_CFG_H
#define N3_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/err.h"

struct cfg;
struct buf;

#define CFG_MAX_BYTES_DEFAULT (4u * 1024u * 1024u)

/* Read and parse a file of at most max_bytes (0: CFG_MAX_BYTES_DEFAULT). */
int cfg_load_file(const char *path, size_t max_bytes, struct cfg **out, struct err *err);
/* Parse text (len bytes, need not be NUL-terminated); name is used in messages. */
int cfg_load_string(const char *name, const char *text, size_t len, struct cfg **out,
                    struct err *err);
void cfg_free(struct cfg *c);

const cJSON *cfg_root(const struct cfg *c);
const char *cfg_name(const struct cfg *c);

/* 1-based line and column (in bytes) of a node's value; of the member's key for cfg_key_pos.
 * A node not from this document gives 0:0. */
void cfg_pos(const struct cfg *c, const cJSON *node, unsigned *line, unsigned *col);
void cfg_key_pos(const struct cfg *c, const cJSON *node, unsigned *line, unsigned *col);
/* Append the path of a node from the root: "" for the root, "steps[2].name", "env.HOME",
 * env["MY-VAR"] for keys that are not identifiers; keys longer than 64 bytes are cut with "...". */
void cfg_path(const struct cfg *c, const cJSON *node, struct buf *out);

/* "FILE:LINE:COL: PATH: message" at the node's value (or at its key); returns -1. */
int cfg_error(const struct cfg *c, struct err *err, const cJSON *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cfg_key_error(const struct cfg *c, struct err *err, const cJSON *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "an object", "an array", "a string", "a number", "true or false", "null". */
const char *cfg_type_name(const cJSON *node);

/*
 * Check that node is an object whose keys are all in `allowed` (NULL-terminated)
 * and that each appears once. An unknown key is reported at the key with the
 * closest allowed key as a suggestion. allowed == NULL allows any key but still
 * refuses duplicates (maps such as "env").
 */
int cfg_check_object(const struct cfg *c, const cJSON *node, const char *const *allowed,
                     struct err *err);

/*
 * Typed getters for a member of obj. A missing member is an error when
 * `required`, otherwise *out is left untouched and 0 is returned. A member of
 * the wrong type or out of range is an error at the member's value.
 */
int cfg_get_string(const struct cfg *c, const cJSON *obj, const char *key, bool required,
                   const char **out, struct err *err);
int cfg_get_bool(const struct cfg *c, const cJSON *obj, const char *key, bool required, bool *out,
                 struct err *err);
/* An integer in [min, max]; 1.5 or 1e400 are errors. */
int cfg_get_int(const struct cfg *c, const cJSON *obj, const char *key, bool required, int64_t min,
                int64_t max, int64_t *out, struct err *err);
/* A finite number in [min, max]. */
int cfg_get_number(const struct cfg *c, const cJSON *obj, const char *key, bool required,
                   double min, double max, double *out, struct err *err);
/* The member node if it exists and has one of the cJSON types in type_mask
 * (cJSON_Object, cJSON_Array, ...); NULL with *err set if present with another type;
 * NULL with err untouched if absent and not required. Use cfg_has to tell these apart. */
const cJSON *cfg_get(const struct cfg *c, const cJSON *obj, const char *key, int type_mask,
                     bool required, struct err *err);
bool cfg_has(const cJSON *obj, const char *key);

/* The candidate closest to word (Damerau-Levenshtein), or NULL when none is close
 * enough to be a likely typo; failing that, the only candidate that starts with word
 * ("timeout" -> "timeout_seconds"). */
const char *cfg_suggest(const char *word, const char *const *candidates);

#endif
