/* Host state: what a target runs, in <deploy_path>/.n3/state.json, and how to rebuild it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/shell.h"
#include "core/xalloc.h"
#include "deploy/hoststate.h"
#include "deploy/semver.h"

#define STATE_FORMAT 1

struct rel {
    char *version, *commit, *sha256, *pushed, *by;
};

struct hist {
    char *time, *action, *version, *by;
};

/* A list of strings, owned. */
struct strv {
    char **v;
    size_t n;
};

static void strv_add(struct strv *l, const char *s)
{
    l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
    l->v[l->n++] = xstrdup(s);
}

static void strv_done(struct strv *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

struct hoststate {
    char *target;
    struct rel *rels;
    size_t nrels;
    char *slot_version[HS_NSLOTS];
    int slot_port[HS_NSLOTS];
    int live; /* enum hs_slot, or -1 */
    char *prev_slot, *prev_version;
    struct hist *hist;
    size_t nhist;
    /* From the disk only (the probe), never written: a release `current` points to directly,
     * and whether a slot or current link could not be read as a release. */
    char *current_release;
    bool links_unreadable;
    /* What hoststate_reconcile changed, for the record of it (never written to state.json). */
    struct strv drift_added, drift_removed, drift_links;
};

static const char *const slot_names[HS_NSLOTS] = {"blue", "green"};

const char *hs_slot_name(enum hs_slot slot)
{
    return slot_names[slot];
}

void hoststate_iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char *dup_or_empty(const char *s)
{
    return xstrdup(s != NULL ? s : "");
}

struct hoststate *hoststate_new(const char *target)
{
    struct hoststate *s = xcalloc(1, sizeof *s);

    s->target = xstrdup(target);
    s->live = -1;
    return s;
}

static void rel_done(struct rel *r)
{
    free(r->version);
    free(r->commit);
    free(r->sha256);
    free(r->pushed);
    free(r->by);
}

static void hist_done(struct hist *h)
{
    free(h->time);
    free(h->action);
    free(h->version);
    free(h->by);
}

void hoststate_free(struct hoststate *s)
{
    size_t i;

    if (s == NULL)
        return;
    for (i = 0; i < s->nrels; i++)
        rel_done(&s->rels[i]);
    for (i = 0; i < s->nhist; i++)
        hist_done(&s->hist[i]);
    free(s->rels);
    free(s->hist);
    for (i = 0; i < HS_NSLOTS; i++)
        free(s->slot_version[i]);
    free(s->prev_slot);
    free(s->prev_version);
    free(s->current_release);
    strv_done(&s->drift_added);
    strv_done(&s->drift_removed);
    strv_done(&s->drift_links);
    free(s->target);
    free(s);
}

static ssize_t find_rel(const struct hoststate *s, const char *version)
{
    size_t i;

    for (i = 0; i < s->nrels; i++) {
        if (strcmp(s->rels[i].version, version) == 0)
            return (ssize_t)i;
    }
    return -1;
}

/* Newest first: versions by precedence, then names that are not versions, by name. */
static int newer_first(const char *a, const char *b)
{
    struct semver va, vb;
    bool oka = semver_parse(a, &va, NULL) == 0, okb = semver_parse(b, &vb, NULL) == 0;
    int c;

    if (oka && okb)
        c = semver_cmp_names(&vb, b, &va, a);
    else if (oka != okb)
        c = oka ? -1 : 1;
    else
        c = strcmp(a, b);
    semver_done(&va);
    semver_done(&vb);
    return c;
}

void hoststate_add_release(struct hoststate *s, const struct hs_release *r)
{
    ssize_t i = find_rel(s, r->version);
    struct rel *x;
    size_t at;

    if (i >= 0) {
        rel_done(&s->rels[i]);
        x = &s->rels[i];
    } else {
        for (at = 0; at < s->nrels && newer_first(s->rels[at].version, r->version) < 0; at++)
            ;
        s->rels = xreallocarray(s->rels, s->nrels + 1, sizeof *s->rels);
        memmove(&s->rels[at + 1], &s->rels[at], (s->nrels - at) * sizeof *s->rels);
        s->nrels++;
        x = &s->rels[at];
    }
    x->version = xstrdup(r->version);
    x->commit = dup_or_empty(r->commit);
    x->sha256 = dup_or_empty(r->sha256);
    x->pushed = dup_or_empty(r->pushed);
    x->by = dup_or_empty(r->by);
}

void hoststate_remove_release(struct hoststate *s, const char *version)
{
    ssize_t i = find_rel(s, version);

    if (i < 0)
        return;
    rel_done(&s->rels[i]);
    memmove(&s->rels[i], &s->rels[i + 1], (s->nrels - (size_t)i - 1) * sizeof *s->rels);
    s->nrels--;
}

size_t hoststate_nreleases(const struct hoststate *s)
{
    return s->nrels;
}

const struct hs_release *hoststate_release(const struct hoststate *s, size_t i)
{
    /* struct rel and struct hs_release have the same members in the same order. */
    return (const struct hs_release *)&s->rels[i];
}

const struct hs_release *hoststate_find(const struct hoststate *s, const char *version)
{
    ssize_t i = find_rel(s, version);

    return i >= 0 ? hoststate_release(s, (size_t)i) : NULL;
}

const char *hoststate_slot_version(const struct hoststate *s, enum hs_slot slot)
{
    return s->slot_version[slot];
}

int hoststate_slot_port(const struct hoststate *s, enum hs_slot slot)
{
    return s->slot_port[slot];
}

void hoststate_set_slot(struct hoststate *s, enum hs_slot slot, const char *version, int port)
{
    free(s->slot_version[slot]);
    s->slot_version[slot] = version != NULL ? xstrdup(version) : NULL;
    s->slot_port[slot] = port;
}

void hoststate_set_live(struct hoststate *s, enum hs_slot slot)
{
    s->live = (int)slot;
}

bool hoststate_live(const struct hoststate *s, enum hs_slot *slot)
{
    if (s->live < 0)
        return false;
    if (slot != NULL)
        *slot = (enum hs_slot)s->live;
    return true;
}

const char *hoststate_previous_version(const struct hoststate *s)
{
    return s->prev_version;
}

bool hoststate_in_use(const struct hoststate *s, const char *version)
{
    int i;

    for (i = 0; i < HS_NSLOTS; i++) {
        if (s->slot_version[i] != NULL && strcmp(s->slot_version[i], version) == 0)
            return true;
    }
    if (s->current_release != NULL && strcmp(s->current_release, version) == 0)
        return true;
    return s->prev_version != NULL && strcmp(s->prev_version, version) == 0;
}

bool hoststate_links_unreadable(const struct hoststate *s)
{
    return s->links_unreadable;
}

void hoststate_add_history(struct hoststate *s, int64_t time, const char *action,
                           const char *version, const char *by)
{
    char iso[32];
    struct hist *h;

    if (s->nhist == HOSTSTATE_HISTORY_MAX) {
        hist_done(&s->hist[0]);
        memmove(&s->hist[0], &s->hist[1], (s->nhist - 1) * sizeof *s->hist);
        s->nhist--;
    }
    s->hist = xreallocarray(s->hist, s->nhist + 1, sizeof *s->hist);
    h = &s->hist[s->nhist++];
    hoststate_iso_time(time, iso);
    h->time = xstrdup(iso);
    h->action = xstrdup(action);
    h->version = dup_or_empty(version);
    h->by = dup_or_empty(by);
}

/* ---- JSON ---- */

static const char *str_member(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int slot_index(const char *name)
{
    int i;

    for (i = 0; name != NULL && i < HS_NSLOTS; i++) {
        if (strcmp(slot_names[i], name) == 0)
            return i;
    }
    return -1;
}

/* s when every character is in allowed (NULL: any printable ASCII but space), else NULL. */
static const char *field_ok(const char *s, const char *allowed)
{
    const char *p;

    if (s == NULL)
        return NULL;
    for (p = s; *p != '\0'; p++) {
        if (allowed != NULL ? strchr(allowed, *p) == NULL : (*p <= ' ' || *p >= 0x7f))
            return NULL;
    }
    return s;
}

int hoststate_parse(const char *target, const char *text, size_t len, struct hoststate **out,
                    struct err *err)
{
    struct json_error je;
    /* Exactly JSON (core/json): cJSON's parser would cut "v1\u0000x" to "v1", silently. */
    cJSON *root = json_parse(text, len, NULL, &je), *item;
    const cJSON *slots, *prev, *hist;
    struct hoststate *s;
    size_t nhist = 0, skip;
    int i;

    if (root == NULL || !cJSON_IsObject(root))
        return cJSON_Delete(root), err_set(err, "not JSON");
    item = cJSON_GetObjectItemCaseSensitive(root, "version");
    /* valuedouble: valueint would read 1.5 as format 1. */
    if (!cJSON_IsNumber(item) || item->valuedouble != STATE_FORMAT) {
        cJSON_Delete(root);
        return err_set(err, "not a version %d state file", STATE_FORMAT);
    }
    s = hoststate_new(target);
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(root, "releases"))
    {
        struct hs_release r;

        r.version = str_member(item, "version");
        if (r.version == NULL || !version_name_ok(r.version, NULL))
            continue;
        if (s->nrels >= HS_RELEASES_MAX)
            break;
        /* Shown on terminals later: only what these fields can hold is taken. */
        r.commit = field_ok(str_member(item, "commit"), "0123456789abcdef");
        r.sha256 = field_ok(str_member(item, "sha256"), "0123456789abcdef");
        r.pushed = field_ok(str_member(item, "pushed"), "0123456789-:TZ");
        r.by = field_ok(str_member(item, "by"), NULL);
        hoststate_add_release(s, &r);
    }
    slots = cJSON_GetObjectItemCaseSensitive(root, "slots");
    for (i = 0; i < HS_NSLOTS; i++) {
        const cJSON *sl = cJSON_GetObjectItemCaseSensitive(slots, slot_names[i]);
        const char *v = str_member(sl, "version");
        const cJSON *port = cJSON_GetObjectItemCaseSensitive(sl, "port");

        if (v != NULL && version_name_ok(v, NULL))
            hoststate_set_slot(s, (enum hs_slot)i, v,
                               cJSON_IsNumber(port) && port->valuedouble >= 1 &&
                                       port->valuedouble <= 65535
                                   ? (int)port->valuedouble
                                   : 0);
    }
    s->live = slot_index(str_member(root, "live"));
    prev = cJSON_GetObjectItemCaseSensitive(root, "previous");
    if (str_member(prev, "version") != NULL && version_name_ok(str_member(prev, "version"), NULL)) {
        s->prev_version = xstrdup(str_member(prev, "version"));
        s->prev_slot = dup_or_empty(str_member(prev, "slot"));
    }
    /* A history longer than the bound (written by hand, or by another version) keeps its
     * newest entries, as hoststate_add_history does. */
    hist = cJSON_GetObjectItemCaseSensitive(root, "history");
    cJSON_ArrayForEach(item, hist)
    {
        if (str_member(item, "action") != NULL)
            nhist++;
    }
    skip = nhist > HOSTSTATE_HISTORY_MAX ? nhist - HOSTSTATE_HISTORY_MAX : 0;
    cJSON_ArrayForEach(item, hist)
    {
        struct hist *h;

        if (str_member(item, "action") == NULL || s->nhist == HOSTSTATE_HISTORY_MAX)
            continue;
        if (skip > 0) {
            skip--;
            continue;
        }
        s->hist = xreallocarray(s->hist, s->nhist + 1, sizeof *s->hist);
        h = &s->hist[s->nhist++];
        h->time = dup_or_empty(str_member(item, "time"));
        h->action = xstrdup(str_member(item, "action"));
        h->version = dup_or_empty(str_member(item, "version"));
        h->by = dup_or_empty(str_member(item, "by"));
    }
    cJSON_Delete(root);
    *out = s;
    return 0;
}

static void add_nonempty(cJSON *o, const char *key, const char *v)
{
    if (v != NULL && v[0] != '\0')
        cJSON_AddStringToObject(o, key, v);
}

char *hoststate_format(const struct hoststate *s, int64_t now)
{
    cJSON *root = cJSON_CreateObject(), *arr, *slots, *o;
    char iso[32], *text, *out;
    size_t i;

    hoststate_iso_time(now, iso);
    cJSON_AddNumberToObject(root, "version", STATE_FORMAT);
    cJSON_AddStringToObject(root, "target", s->target);
    cJSON_AddStringToObject(root, "updated", iso);
    arr = cJSON_AddArrayToObject(root, "releases");
    for (i = 0; i < s->nrels; i++) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "version", s->rels[i].version);
        add_nonempty(o, "commit", s->rels[i].commit);
        add_nonempty(o, "sha256", s->rels[i].sha256);
        add_nonempty(o, "pushed", s->rels[i].pushed);
        add_nonempty(o, "by", s->rels[i].by);
        cJSON_AddItemToArray(arr, o);
    }
    slots = cJSON_AddObjectToObject(root, "slots");
    for (i = 0; i < HS_NSLOTS; i++) {
        if (s->slot_version[i] == NULL) {
            cJSON_AddNullToObject(slots, slot_names[i]);
            continue;
        }
        o = cJSON_AddObjectToObject(slots, slot_names[i]);
        cJSON_AddStringToObject(o, "version", s->slot_version[i]);
        if (s->slot_port[i] > 0)
            cJSON_AddNumberToObject(o, "port", s->slot_port[i]);
    }
    if (s->live >= 0)
        cJSON_AddStringToObject(root, "live", slot_names[s->live]);
    else
        cJSON_AddNullToObject(root, "live");
    if (s->prev_version != NULL) {
        o = cJSON_AddObjectToObject(root, "previous");
        add_nonempty(o, "slot", s->prev_slot);
        cJSON_AddStringToObject(o, "version", s->prev_version);
    } else {
        cJSON_AddNullToObject(root, "previous");
    }
    arr = cJSON_AddArrayToObject(root, "history");
    for (i = 0; i < s->nhist; i++) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "time", s->hist[i].time);
        cJSON_AddStringToObject(o, "action", s->hist[i].action);
        add_nonempty(o, "version", s->hist[i].version);
        add_nonempty(o, "by", s->hist[i].by);
        cJSON_AddItemToArray(arr, o);
    }
    text = cJSON_Print(root);
    out = xasprintf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
    return out;
}

/* ---- rebuilding from what is on disk ---- */

void hoststate_probe_command(const char *deploy_path, struct buf *out)
{
    shell_cmdf(out, "cd %s 2>/dev/null || exit 0; ", deploy_path);
    buf_adds(out,
             "for d in releases/*/; do [ -d \"$d\" ] || continue; n=${d%/}; n=${n#releases/}; "
             "case $n in .*) continue;; *[!A-Za-z0-9._+-]*) printf 'badname %s\\n' \"$(printf %s "
             "\"$n\" | "
             "tr -c 'A-Za-z0-9._+-' '?')\"; continue;; esac; "
             "printf 'release %s' \"$n\"; "
             "if [ -f \"$d/REVISION\" ]; then ");
    /* A bounded prefix of REVISION: n3ctl writes three short lines, and read(1) takes a byte
     * at a time (100 MB of it took 16 s). A longer one is said to be cut. */
    buf_addf(out,
             "head -c %d -- \"$d/REVISION\" | while read -r k v || [ -n \"$k\" ]; do case $k in "
             "commit|sha256) printf ' %%s=%%s' \"$k\" \"$v\";; esac; done; "
             "[ -z \"$(find -L \"$d/REVISION\" -prune -size +%dc)\" ] || printf ' revision_cut'; ",
             HOSTSTATE_REVISION_MAX, HOSTSTATE_REVISION_MAX);
    buf_adds(out,
             "fi; "
             "echo; done; "
             "for s in blue green; do [ -L slots/$s ] && printf 'slot %s %s\\n' $s "
             "\"$(printf %s \"$(readlink slots/$s)\" | tr '\\n ' '\?\?')\"; done; "
             "[ -L current ] && printf 'current %s\\n' \"$(printf %s \"$(readlink current)\" | tr "
             "'\\n ' '\?\?')\"; "
             "exit 0");
}

static bool is_hex(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    }
    return true;
}

/* The last component of a link's target, trailing slashes (and "/." ) ignored; NULL if none. */
static char *link_base(char *dest)
{
    size_t n;
    char *slash;

    if (dest == NULL)
        return NULL;
    for (n = strlen(dest); n > 0;) {
        if (dest[n - 1] == '/')
            dest[--n] = '\0';
        else if (n >= 2 && dest[n - 1] == '.' && dest[n - 2] == '/')
            dest[n -= 2] = '\0';
        else
            break;
    }
    if (n == 0)
        return NULL;
    slash = strrchr(dest, '/');
    return slash != NULL ? slash + 1 : dest;
}

struct hoststate *hoststate_from_probe(const char *target, const char *text, char **warnings)
{
    struct hoststate *s = hoststate_new(target);
    struct buf warn;
    char *copy = xstrdup(text), *line, *save = NULL;
    bool too_many = false;

    buf_init(&warn);
    for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *word, *wsave = NULL;

        word = strtok_r(line, " ", &wsave);
        if (word == NULL)
            continue;
        if (strcmp(word, "badname") == 0) {
            char *shown = strtok_r(NULL, "", &wsave);

            buf_addf(&warn,
                     "%sreleases/%.60s is not a valid version name (? stands for a character "
                     "outside A-Za-z0-9._+-): skipped",
                     warn.len ? "; " : "", shown != NULL ? shown : "?");
        } else if (strcmp(word, "release") == 0) {
            struct hs_release r = {0};
            char *name = strtok_r(NULL, " ", &wsave), *kv;

            if (name == NULL)
                continue;
            if (s->nrels >= HS_RELEASES_MAX) {
                if (!too_many)
                    buf_addf(&warn, "%smore than %d releases: the others were not read",
                             warn.len ? "; " : "", HS_RELEASES_MAX);
                too_many = true;
                continue;
            }
            if (!version_name_ok(name, NULL)) {
                buf_addf(&warn, "%sreleases/%.60s is not a valid version name: skipped",
                         warn.len ? "; " : "", name);
                continue;
            }
            r.version = name;
            while ((kv = strtok_r(NULL, " ", &wsave)) != NULL) {
                if (strncmp(kv, "commit=", 7) == 0 && is_hex(kv + 7))
                    r.commit = kv + 7;
                else if (strncmp(kv, "sha256=", 7) == 0 && is_hex(kv + 7))
                    r.sha256 = kv + 7;
                else if (strcmp(kv, "revision_cut") == 0)
                    buf_addf(&warn,
                             "%sreleases/%s/REVISION is larger than %d bytes (n3ctl writes three "
                             "short lines): only its first %d bytes were read",
                             warn.len ? "; " : "", name, HOSTSTATE_REVISION_MAX,
                             HOSTSTATE_REVISION_MAX);
            }
            hoststate_add_release(s, &r);
        } else if (strcmp(word, "slot") == 0) {
            char *name = strtok_r(NULL, " ", &wsave);
            int i = slot_index(name);
            char *dest = strtok_r(NULL, " ", &wsave), *base;

            if (i < 0)
                continue;
            base = link_base(dest);
            if (base != NULL && version_name_ok(base, NULL)) {
                hoststate_set_slot(s, (enum hs_slot)i, base, 0);
            } else {
                s->links_unreadable = true;
                buf_addf(&warn, "%sslots/%s points to %.100s, which is not a release",
                         warn.len ? "; " : "", name, dest != NULL ? dest : "nothing");
            }
        } else if (strcmp(word, "current") == 0) {
            char *dest = strtok_r(NULL, " ", &wsave), *base = link_base(dest);

            if (base != NULL && slot_index(base) >= 0) {
                s->live = slot_index(base);
            } else if (base != NULL && version_name_ok(base, NULL)) {
                free(s->current_release); /* current -> releases/V, no slot in between */
                s->current_release = xstrdup(base);
            } else {
                s->links_unreadable = true;
                buf_addf(&warn, "%scurrent points to %.100s, which is neither a slot nor a release",
                         warn.len ? "; " : "", dest != NULL ? dest : "nothing");
            }
        }
    }
    free(copy);
    if (warnings != NULL)
        *warnings = warn.len > 0 ? buf_detach(&warn, NULL) : NULL;
    buf_done(&warn);
    return s;
}

void hoststate_reconcile(struct hoststate *s, const struct hoststate *disk, struct buf *warn)
{
    char link[200];
    size_t i;

    for (i = s->nrels; i-- > 0;) {
        if (find_rel(disk, s->rels[i].version) >= 0)
            continue;
        buf_addf(warn, "%sreleases/%s is in state.json but not on disk: dropped it",
                 warn->len ? "; " : "", s->rels[i].version);
        strv_add(&s->drift_removed, s->rels[i].version);
        hoststate_remove_release(s, s->rels[i].version);
    }
    for (i = 0; i < disk->nrels; i++) {
        if (find_rel(s, disk->rels[i].version) >= 0)
            continue;
        buf_addf(warn, "%sreleases/%s is on disk but not in state.json: added it",
                 warn->len ? "; " : "", disk->rels[i].version);
        strv_add(&s->drift_added, disk->rels[i].version);
        hoststate_add_release(s, hoststate_release(disk, i));
    }
    /* The slot links and current are what runs: a state that says otherwise is wrong (and a
     * prune that believed it could remove a running release). A link that is missing leaves
     * the state as it is. */
    for (i = 0; i < HS_NSLOTS; i++) {
        const char *on_disk = hoststate_slot_version(disk, (enum hs_slot)i);
        const char *said = hoststate_slot_version(s, (enum hs_slot)i);

        if (on_disk == NULL || (said != NULL && strcmp(said, on_disk) == 0))
            continue;
        buf_addf(warn, "%sslots/%s points to releases/%s, but state.json says %s: took the link",
                 warn->len ? "; " : "", hs_slot_name((enum hs_slot)i), on_disk,
                 said != NULL ? said : "nothing");
        snprintf(link, sizeof link, "slots/%s -> releases/%s", hs_slot_name((enum hs_slot)i),
                 on_disk);
        strv_add(&s->drift_links, link);
        hoststate_set_slot(s, (enum hs_slot)i, on_disk, 0);
    }
    free(s->current_release);
    s->current_release = disk->current_release != NULL ? xstrdup(disk->current_release) : NULL;
    s->links_unreadable = disk->links_unreadable;
    if (disk->live >= 0 && disk->live != s->live) {
        buf_addf(warn, "%scurrent points to slots/%s, but state.json says %s: took the link",
                 warn->len ? "; " : "", hs_slot_name((enum hs_slot)disk->live),
                 s->live >= 0 ? hs_slot_name((enum hs_slot)s->live) : "none");
        snprintf(link, sizeof link, "current -> slots/%s", hs_slot_name((enum hs_slot)disk->live));
        strv_add(&s->drift_links, link);
        s->live = disk->live;
    }
}

static void add_strings(cJSON *o, const char *key, const struct strv *l)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    size_t i;

    for (i = 0; i < l->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(l->v[i]));
}

size_t hoststate_drift(const struct hoststate *s, cJSON *detail)
{
    size_t n = s->drift_added.n + s->drift_removed.n + s->drift_links.n;

    if (n == 0 || detail == NULL)
        return n;
    add_strings(detail, "added", &s->drift_added);
    add_strings(detail, "removed", &s->drift_removed);
    if (s->drift_links.n > 0)
        add_strings(detail, "links", &s->drift_links);
    return n;
}
