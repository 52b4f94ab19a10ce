/* The inventory: environments, targets and SSH settings from n3.json. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/cfg.h"
#include "core/xalloc.h"
#include "deploy/inventory.h"
#include "deploy/metricsrc.h"
#include "deploy/rolloutcfg.h"
#include "deploy/probe.h"
#include "deploy/router.h"
#include "deploy/knownhosts.h"

#define INVENTORY_VERSION 1
#define NAME_MAX_LEN      100

struct inv_env {
    char *name;
    struct inv_target *targets;
    size_t ntargets;
    size_t lock_target;
    struct inv_service service; /* its own, or a copy of the top level's */
    bool has_service;
    struct probe_spec *probes; /* its own, or copies of the top level's */
    size_t nprobes;
    struct inv_router router;      /* its own, or a copy of the top level's; kind NULL: none */
    struct metricsrc_spec metrics; /* its own, or a copy of the top level's; kind NULL: none */
    struct rolloutcfg rollout;     /* its own "rollout", or the top level's (has_rollout) */
    bool has_rollout;
};

struct inventory {
    char *path;
    struct inv_ssh ssh;
    struct inv_app app;
    struct inv_hooks hooks;
    struct inv_lock_cfg lock;
    struct inv_service service; /* the top level's: for environments without their own */
    bool has_service;
    struct probe_spec *probes; /* the top level's */
    size_t nprobes;
    struct inv_router router;      /* the top level's */
    struct metricsrc_spec metrics; /* the top level's */
    struct inv_env *envs;
    size_t nenvs;
    char *default_env;
};

static const char *const top_keys[] = {"version", "app",     "ssh",          "hooks",
                                       "lock",    "service", "probes",       "router",
                                       "metrics", "rollout", "environments", "default_environment",
                                       NULL};
static const char *const service_keys[] = {
    "ports", "start",  "stop", "stop_grace_seconds", "ready_timeout_seconds",
    "mode",  "listen", NULL};
static const char *const listen_kinds[] = {"public", "loopback", NULL};
static const char *const slot_keys[] = {"blue", "green", NULL};
static const char *const service_modes[] = {
    [INV_SERVICE_DETACHED] = "detached", [INV_SERVICE_SYSTEMD] = "systemd", NULL};
static const char *const app_keys[] = {"name", "repository", "tag_pattern", "keep_releases", NULL};
static const char *const hook_names[HOOK_COUNT + 1] = {
    [HOOK_BUILD] = "build",
    [HOOK_AFTER_UNPACK] = "after_unpack",
    [HOOK_BEFORE_START] = "before_start",
    [HOOK_AFTER_SWITCH] = "after_switch",
    [HOOK_COUNT] = NULL,
};
static const char *const hook_keys[] = {"build",        "after_unpack",    "before_start",
                                        "after_switch", "timeout_seconds", NULL};
static const char *const hook_vars[] = {"version", "release_dir", "slot", "port", "target", NULL};
/* Which variables have a value when each hook runs (bit i is hook_vars[i]). */
static const unsigned hook_var_mask[HOOK_COUNT] = {
    [HOOK_BUILD] = 0x3,         /* version, release_dir: before any target is involved */
    [HOOK_AFTER_UNPACK] = 0x13, /* version, release_dir, target: no slot yet */
    [HOOK_BEFORE_START] = 0x1f,
    [HOOK_AFTER_SWITCH] = 0x1f,
};
static const char *const lock_keys[] = {"lease_seconds", NULL};
static const char *const ssh_keys[] = {
    "user",
    "port",
    "identity",
    "known_hosts",
    "agent",
    "connect_timeout_seconds",
    "auth_timeout_seconds",
    "command_timeout_seconds",
    "keepalive_seconds",
    "max_handshakes",
    NULL,
};
static const char *const env_keys[] = {"targets", "deploy_path", "lock_target", "description",
                                       "service", "probes",      "router",      "metrics",
                                       "rollout", NULL};
static const char *const target_keys[] = {"name",   "transport",   "host",        "port", "user",
                                          "labels", "deploy_path", "description", NULL};

struct loader {
    const struct cfg *cfg;
    struct inventory *inv;
    struct err *err;
};

static char **strv_push(char **v, size_t *n, char *s)
{
    v = xreallocarray(v, *n + 2, sizeof *v);
    v[(*n)++] = s;
    v[*n] = NULL;
    return v;
}

static void strv_free(char **v)
{
    size_t i;

    for (i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

/* "~/x" is $HOME/x; everything else as it is. */
static char *expand_home(const char *path)
{
    const char *home = getenv("HOME");

    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0') && home != NULL)
        return xasprintf("%s%s", home, path + 1);
    return xstrdup(path);
}

/* Names go into paths (the release cache, the audit heads) and onto terminals: "." and ".."
 * would name a directory other than their own. */
static bool valid_name(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > NAME_MAX_LEN || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._:@+-", c) != NULL))
            return false;
    }
    return true;
}

static int get_name(struct loader *ld, const cJSON *obj, const char *key, bool required,
                    const char **out)
{
    const cJSON *node;

    if (cfg_get_string(ld->cfg, obj, key, required, out, ld->err) != 0)
        return -1;
    node = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (node != NULL && !valid_name(*out))
        return cfg_error(ld->cfg, ld->err, node,
                         "not a valid name: 1-%d characters from letters, digits and . _ : @ + -, "
                         "and not . or ..",
                         NAME_MAX_LEN);
    return 0;
}

/* The first control character of s: C0 (newline and tab among them), DEL, or C1 written as
 * UTF-8 (U+0080 to U+009F; n3.json is valid UTF-8). Its 1-based position in characters, and
 * its code point in *cp; 0 when there is none. */
static size_t control_at(const char *s, unsigned *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 0;

    for (; *p != '\0'; p++) {
        if ((*p & 0xc0) != 0x80)
            chars++;
        if (*p < 0x20 || *p == 0x7f) {
            *cp = *p;
            return chars;
        }
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            *cp = p[1];
            return chars;
        }
    }
    return 0;
}

/* A string that ends up in a path, a command on a target or a terminal: a control character
 * there is a mistake (a path with a newline is another path to the shell) or an attack. */
static int check_text(struct loader *ld, const cJSON *node, const char *what, const char *s)
{
    unsigned cp = 0;
    size_t at = control_at(s, &cp);

    if (at == 0)
        return 0;
    return cfg_error(ld->cfg, ld->err, node,
                     "character %zu of %s is a control character (U+%04X); remove it", at, what,
                     cp);
}

/* cfg_get_string, and no control characters (check_text). */
static int get_text(struct loader *ld, const cJSON *obj, const char *key, bool required,
                    const char **out)
{
    const char *s = NULL;

    if (cfg_get_string(ld->cfg, obj, key, required, &s, ld->err) != 0)
        return -1;
    if (s != NULL && check_text(ld, cJSON_GetObjectItemCaseSensitive(obj, key), key, s) != 0)
        return -1;
    if (s != NULL)
        *out = s;
    return 0;
}

static int get_ms(struct loader *ld, const cJSON *obj, const char *key, double max, uint64_t *out)
{
    double v = -1;

    if (cfg_get_number(ld->cfg, obj, key, false, 0.001, max, &v, ld->err) != 0)
        return -1;
    if (v > 0)
        *out = (uint64_t)(v * 1000.0 + 0.5);
    return 0;
}

static int get_abs_path(struct loader *ld, const cJSON *obj, const char *key, char **out)
{
    const char *s = NULL;

    if (get_text(ld, obj, key, false, &s) != 0)
        return -1;
    if (s == NULL)
        return 0;
    if (s[0] != '/')
        return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(obj, key),
                         "%s must be an absolute path (it is used on the targets)", key);
    free(*out);
    *out = xstrdup(s);
    return 0;
}

static void ssh_defaults(struct inv_ssh *s)
{
    static const char *const keys[] = {"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa",
                                       NULL};
    const char *user = getenv("USER");
    size_t n = 0, i;

    s->user = xstrdup(user != NULL && user[0] != '\0' ? user : "root");
    s->port = 22;
    for (i = 0; keys[i] != NULL; i++) {
        char *path = expand_home(keys[i]);

        if (access(path, F_OK) == 0)
            s->identities = strv_push(s->identities, &n, path);
        else
            free(path);
    }
    if (s->identities == NULL)
        s->identities = xcalloc(1, sizeof *s->identities);
    s->known_hosts = expand_home("~/.ssh/known_hosts");
    s->agent = true;
    s->connect_timeout_ms = 10000;
    s->auth_timeout_ms = 10000;
    s->command_timeout_ms = 300000;
    s->keepalive_ms = 15000;
    s->max_handshakes = 16;
}

static int load_ssh(struct loader *ld, const cJSON *root)
{
    struct inv_ssh *s = &ld->inv->ssh;
    const cJSON *o = cfg_get(ld->cfg, root, "ssh", cJSON_Object, false, ld->err), *id, *item;
    const char *str = NULL;
    int64_t port = -1, hs = -1;
    size_t n = 0;

    if (o == NULL)
        return cfg_has(root, "ssh") ? -1 : 0;
    if (cfg_check_object(ld->cfg, o, ssh_keys, ld->err) != 0)
        return -1;
    if (get_text(ld, o, "user", false, &str) != 0)
        return -1;
    if (str != NULL) {
        free(s->user);
        s->user = xstrdup(str);
    }
    if (cfg_get_int(ld->cfg, o, "port", false, 1, 65535, &port, ld->err) != 0 ||
        cfg_get_int(ld->cfg, o, "max_handshakes", false, 1, 1024, &hs, ld->err) != 0 ||
        cfg_get_bool(ld->cfg, o, "agent", false, &s->agent, ld->err) != 0 ||
        get_ms(ld, o, "connect_timeout_seconds", 3600, &s->connect_timeout_ms) != 0 ||
        get_ms(ld, o, "auth_timeout_seconds", 3600, &s->auth_timeout_ms) != 0 ||
        get_ms(ld, o, "command_timeout_seconds", 2592000, &s->command_timeout_ms) != 0 ||
        get_ms(ld, o, "keepalive_seconds", 3600, &s->keepalive_ms) != 0)
        return -1;
    if (port > 0)
        s->port = (unsigned)port;
    if (hs > 0)
        s->max_handshakes = (unsigned)hs;
    str = NULL;
    if (get_text(ld, o, "known_hosts", false, &str) != 0)
        return -1;
    if (str != NULL) {
        free(s->known_hosts);
        s->known_hosts = expand_home(str);
    }
    id = cfg_get(ld->cfg, o, "identity", cJSON_String | cJSON_Array, false, ld->err);
    if (id == NULL)
        return cfg_has(o, "identity") ? -1 : 0;
    strv_free(s->identities);
    s->identities = NULL;
    if (cJSON_IsString(id)) {
        if (check_text(ld, id, "identity", id->valuestring) != 0)
            return -1;
        s->identities = strv_push(s->identities, &n, expand_home(id->valuestring));
    } else {
        cJSON_ArrayForEach(item, id)
        {
            if (!cJSON_IsString(item))
                return cfg_error(ld->cfg, ld->err, item, "expected a key file, got %s",
                                 cfg_type_name(item));
            if (check_text(ld, item, "identity", item->valuestring) != 0)
                return -1;
            s->identities = strv_push(s->identities, &n, expand_home(item->valuestring));
        }
    }
    if (s->identities == NULL)
        s->identities = xcalloc(1, sizeof *s->identities);
    return 0;
}

/* The directory n3.json is in. */
static char *config_dir(const char *path)
{
    char *abs = realpath(path, NULL), *slash;

    if (abs == NULL)
        abs = xstrdup(path);
    slash = strrchr(abs, '/');
    if (slash == NULL) {
        free(abs);
        return xstrdup(".");
    }
    if (slash == abs)
        slash[1] = '\0';
    else
        *slash = '\0';
    return abs;
}

static int load_app(struct loader *ld, const cJSON *root)
{
    struct inv_app *a = &ld->inv->app;
    const cJSON *o = cfg_get(ld->cfg, root, "app", cJSON_Object, false, ld->err);
    const char *name = NULL, *repo = NULL, *pattern = NULL, *slash;
    char *dir = config_dir(ld->inv->path);
    int64_t keep = 5;

    if (o == NULL && cfg_has(root, "app")) {
        free(dir);
        return -1;
    }
    if (o != NULL &&
        (cfg_check_object(ld->cfg, o, app_keys, ld->err) != 0 ||
         get_name(ld, o, "name", false, &name) != 0 ||
         get_text(ld, o, "repository", false, &repo) != 0 ||
         get_text(ld, o, "tag_pattern", false, &pattern) != 0 ||
         cfg_get_int(ld->cfg, o, "keep_releases", false, 1, 1000, &keep, ld->err) != 0)) {
        free(dir);
        return -1;
    }
    /* A relative repository is relative to n3.json, not to where n3ctl runs. */
    if (repo == NULL)
        a->repository = xstrdup(dir);
    else if (repo[0] == '/')
        a->repository = xstrdup(repo);
    else if (repo[0] == '~')
        a->repository = expand_home(repo);
    else
        a->repository = xasprintf("%s/%s", dir, repo);
    free(dir);
    slash = strrchr(a->repository, '/');
    a->name = xstrdup(name != NULL ? name : slash != NULL && slash[1] != '\0' ? slash + 1 : "app");
    if (!valid_name(a->name)) {
        free(a->name);
        a->name = xstrdup("app");
    }
    a->tag_pattern = xstrdup(pattern != NULL && pattern[0] != '\0' ? pattern : "*");
    a->keep_releases = (unsigned)keep;
    return 0;
}

/* A hook template: {name} must be a known variable; {{ and }} are braces. */
/* The {variables} of a command (a hook, the service's start and stop): each one known, and
 * with a value where it runs (mask: bit i for hook_vars[i]; a hook's own name, or NULL). */
static int check_vars(struct loader *ld, const cJSON *node, unsigned mask, int hook, const char *s)
{
    const char *p, *end;

    for (p = s; *p != '\0'; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            p++;
            continue;
        }
        if (*p == '}')
            return cfg_error(ld->cfg, ld->err, node,
                             "a lone \"}\" at character %zu; write }} for a brace",
                             (size_t)(p - s) + 1);
        if (*p != '{')
            continue;
        end = strchr(p, '}');
        if (end == NULL)
            return cfg_error(ld->cfg, ld->err, node,
                             "\"{\" at character %zu is not closed; write {{ for a brace",
                             (size_t)(p - s) + 1);
        {
            char var[64];
            size_t n = (size_t)(end - p - 1);
            const char *hint;
            size_t i;

            snprintf(var, sizeof var, "%.*s", (int)(n < sizeof var - 1 ? n : sizeof var - 1),
                     p + 1);
            for (i = 0; hook_vars[i] != NULL && strcmp(hook_vars[i], var) != 0; i++)
                ;
            if (hook_vars[i] == NULL) {
                hint = cfg_suggest(var, hook_vars);
                if (hint != NULL)
                    return cfg_error(ld->cfg, ld->err, node,
                                     "unknown variable {%s}; did you mean {%s}?", var, hint);
                return cfg_error(ld->cfg, ld->err, node,
                                 "unknown variable {%s}; the variables are {version}, "
                                 "{release_dir}, {slot}, {port} and {target}",
                                 var);
            }
            if ((mask & (1u << i)) == 0)
                return cfg_error(ld->cfg, ld->err, node,
                                 "{%s} has no value when the %s hook runs (it runs %s)", var,
                                 hook_names[hook],
                                 hook == HOOK_BUILD ? "on this machine, before any target"
                                                    : "before the release has a slot");
        }
        p = end;
    }
    return 0;
}

static int check_hook(struct loader *ld, const cJSON *node, int hook, const char *s)
{
    return check_vars(ld, node, hook_var_mask[hook], hook, s);
}

/* A service: how each slot's instance starts and stops (docs/config.md, "service"). */
static int load_service(struct loader *ld, const cJSON *o, struct inv_service *sv)
{
    const cJSON *ports, *node;
    const char *mode = NULL, *cmd = NULL, *listen = NULL;
    int64_t port;
    unsigned i, m;

    memset(sv, 0, sizeof *sv);
    sv->stop_grace_ms = 10000;
    sv->ready_timeout_ms = 60000;
    if (cfg_check_object(ld->cfg, o, service_keys, ld->err) != 0 ||
        get_ms(ld, o, "stop_grace_seconds", 3600, &sv->stop_grace_ms) != 0 ||
        get_ms(ld, o, "ready_timeout_seconds", 3600, &sv->ready_timeout_ms) != 0 ||
        get_text(ld, o, "mode", false, &mode) != 0 ||
        get_text(ld, o, "listen", false, &listen) != 0)
        return -1;
    if (listen != NULL) {
        if (strcmp(listen, "loopback") == 0) {
            sv->loopback = true;
        } else if (strcmp(listen, "public") != 0) {
            const char *hint = cfg_suggest(listen, listen_kinds);

            return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(o, "listen"),
                             "unknown listen \"%.40s\"%s%s%s; it is public (the default: probes "
                             "connect to the target's host) or loopback (the app listens only on "
                             "the target's 127.0.0.1: probes go through its SSH connection)",
                             listen, hint != NULL ? "; did you mean \"" : "",
                             hint != NULL ? hint : "", hint != NULL ? "\"?" : "");
        }
    }
    if (mode != NULL) {
        for (m = 0; service_modes[m] != NULL && strcmp(service_modes[m], mode) != 0; m++)
            ;
        if (service_modes[m] == NULL) {
            const char *hint = cfg_suggest(mode, service_modes);

            return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(o, "mode"),
                             "unknown mode \"%.40s\"%s%s%s; the modes are detached (the "
                             "default) and systemd",
                             mode, hint != NULL ? "; did you mean \"" : "",
                             hint != NULL ? hint : "", hint != NULL ? "\"?" : "");
        }
        sv->mode = (enum inv_service_mode)m;
    }
    ports = cfg_get(ld->cfg, o, "ports", cJSON_Object, true, ld->err);
    if (ports == NULL || cfg_check_object(ld->cfg, ports, slot_keys, ld->err) != 0)
        return -1;
    for (i = 0; i < INV_SLOTS; i++) {
        if (cfg_get_int(ld->cfg, ports, slot_keys[i], true, 1, 65535, &port, ld->err) != 0)
            return -1;
        sv->ports[i] = (unsigned)port;
    }
    if (sv->ports[0] == sv->ports[1])
        return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(ports, "green"),
                         "green has the port of blue (%u): the two slots run at once, each needs "
                         "a port of its own",
                         sv->ports[1]);
    for (i = 0; i < 2; i++) {
        const char *key = i == 0 ? "start" : "stop";
        bool required = i == 0 || sv->mode == INV_SERVICE_SYSTEMD;

        cmd = NULL; /* a missing key leaves it as it was: not start's for stop */
        if (cfg_get_string(ld->cfg, o, key, required, &cmd, ld->err) != 0) {
            if (required && !cfg_has(o, key))
                return cfg_error(ld->cfg, ld->err, o, "\"%s\" is missing: %s", key,
                                 i == 0 ? "the command that starts a slot's instance, with its "
                                          "{port} (e.g. \"exec ./app --port {port}\")"
                                        : "mode systemd stops a slot with your own command (e.g. "
                                          "\"systemctl stop app@{slot}\")");
            return -1;
        }
        if (cmd == NULL)
            continue;
        node = cJSON_GetObjectItemCaseSensitive(o, key);
        if (cmd[0] == '\0')
            return cfg_error(ld->cfg, ld->err, node, "an empty command");
        if (check_vars(ld, node, 0x1f, -1, cmd) != 0)
            return -1;
        if (i == 0)
            sv->start = xstrdup(cmd);
        else
            sv->stop = xstrdup(cmd);
    }
    return 0;
}

static void service_done(struct inv_service *sv)
{
    free(sv->start);
    free(sv->stop);
    memset(sv, 0, sizeof *sv);
}

static void service_copy(struct inv_service *to, const struct inv_service *from)
{
    *to = *from;
    to->start = from->start != NULL ? xstrdup(from->start) : NULL;
    to->stop = from->stop != NULL ? xstrdup(from->stop) : NULL;
}

/* "probes": a list of probes, names unique in it. */
static int load_probes(struct loader *ld, const cJSON *o, struct probe_spec **out, size_t *n)
{
    const cJSON *list = cfg_get(ld->cfg, o, "probes", cJSON_Array, true, ld->err), *item;
    size_t i = 0, j;

    if (list == NULL)
        return -1;
    *n = 0;
    *out = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof **out);
    cJSON_ArrayForEach(item, list)
    {
        if (probe_spec_load(ld->cfg, item, &(*out)[i], ld->err) != 0)
            return -1;
        *n = ++i;
        for (j = 0; j + 1 < i; j++) {
            if (strcmp((*out)[j].name, (*out)[i - 1].name) == 0)
                return cfg_error(ld->cfg, ld->err, item,
                                 "a second probe named \"%s\" (give each a \"name\" of its own)",
                                 (*out)[i - 1].name);
        }
    }
    return 0;
}

/* "router": its type (a registered kind) and the kind's keys, checked by it. */
/* "HOST:PORT" ("[::1]:80" too): its port, and a pointer to where the host ends; NULL when it
 * is not that. */
static const char *host_port(const char *s, unsigned *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    unsigned long p;

    if (colon == NULL || colon == s || colon[1] < '0' || colon[1] > '9')
        return NULL;
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
        return NULL;
    *port = (unsigned)p;
    return colon;
}

static int load_target(struct loader *ld, const cJSON *o, struct inv_target *t,
                       const char *env_deploy_path, bool need_deploy_path);
static void target_done(struct inv_target *t);

static void router_on_free(struct inv_router *r)
{
    if (r->on != NULL) {
        target_done(r->on);
        free(r->on);
        r->on = NULL;
    }
}

/* The router's "on": a target object (name, transport, host, port, user), no deploy_path
 * needed: nothing is deployed there. */
static int load_router_on(struct loader *ld, const cJSON *router, struct inv_router *r)
{
    const cJSON *on;

    if (!cfg_has(router, "on"))
        return 0;
    on = cfg_get(ld->cfg, router, "on", cJSON_Object, true, ld->err);
    if (on == NULL)
        return -1;
    r->on = xcalloc(1, sizeof *r->on);
    return load_target(ld, on, r->on, NULL, false);
}

static int load_router(struct loader *ld, const cJSON *o, struct inv_router *r)
{
    const cJSON *node = cfg_get(ld->cfg, o, "router", cJSON_Object, true, ld->err);
    const char *type = NULL, *allowed[40];
    const struct router_kind *k;
    size_t n = 0, i;

    if (node == NULL || cfg_get_string(ld->cfg, node, "type", true, &type, ld->err) != 0)
        return -1;
    k = router_kind_find(type);
    if (k == NULL) {
        const char *hint = cfg_suggest(type, router_kind_names());

        return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(node, "type"),
                         "no router \"%.40s\"%s%s%s", type, hint ? "; did you mean \"" : "",
                         hint ? hint : "", hint ? "\"?" : "");
    }
    allowed[n++] = "type";
    allowed[n++] = "frontend";
    allowed[n++] = "on";
    for (i = 0; k->keys != NULL && k->keys[i] != NULL && n < 39; i++)
        allowed[n++] = k->keys[i];
    allowed[n] = NULL;
    if (cfg_check_object(ld->cfg, node, allowed, ld->err) != 0 ||
        (k->check != NULL && k->check(ld->cfg, node, ld->err) != 0))
        return -1;
    if (cfg_has(node, "frontend")) {
        const char *fe = NULL;
        unsigned port;

        if (cfg_get_string(ld->cfg, node, "frontend", false, &fe, ld->err) != 0)
            return -1;
        if (host_port(fe, &port) == NULL)
            return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(node, "frontend"),
                             "HOST:PORT where the router takes the traffic (\"127.0.0.1:8080\"), "
                             "a port from 1 to 65535");
    }
    r->kind = k;
    r->config = cJSON_Duplicate(node, true);
    return load_router_on(ld, node, r);
}

/* "metrics": its source (a registered kind), the common keys and the kind's, checked by it. */
static int load_metrics(struct loader *ld, const cJSON *o, struct metricsrc_spec *m)
{
    const cJSON *node = cfg_get(ld->cfg, o, "metrics", cJSON_Object, true, ld->err);

    if (node == NULL)
        return -1;
    return metricsrc_spec_load(ld->cfg, node, m, ld->err);
}

/* A metric source that reads a router's counters needs that router. */
static int check_metrics_router(struct loader *ld, const cJSON *env, struct inv_env *e)
{
    const cJSON *node = cfg_has(env, "metrics")
                            ? cJSON_GetObjectItemCaseSensitive(env, "metrics")
                            : cJSON_GetObjectItemCaseSensitive(cfg_root(ld->cfg), "metrics");
    const struct metricsrc_kind *k = e->metrics.kind;

    if (k == NULL || k->router == NULL)
        return 0;
    if (e->router.kind == NULL)
        return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(node, "source"),
                         "the %s metric source reads the router's counters, and environment "
                         "\"%s\" has no router (\"router\": {\"type\": \"%s\", ...})",
                         k->name, e->name, k->router);
    if (strcmp(e->router.kind->name, k->router) != 0)
        return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(node, "source"),
                         "the %s metric source reads the counters of a %s router, and "
                         "environment \"%s\" has a %s router",
                         k->name, k->router, e->name, e->router.kind->name);
    return 0;
}

static void probes_free(struct probe_spec *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        probe_spec_done(&v[i]);
    free(v);
}

static int load_hooks(struct loader *ld, const cJSON *root)
{
    struct inv_hooks *h = &ld->inv->hooks;
    const cJSON *o = cfg_get(ld->cfg, root, "hooks", cJSON_Object, false, ld->err);
    int i;

    h->timeout_ms = 600000;
    if (o == NULL)
        return cfg_has(root, "hooks") ? -1 : 0;
    if (cfg_check_object(ld->cfg, o, hook_keys, ld->err) != 0 ||
        get_ms(ld, o, "timeout_seconds", 86400, &h->timeout_ms) != 0)
        return -1;
    for (i = 0; i < HOOK_COUNT; i++) {
        const char *cmd = NULL;

        if (cfg_get_string(ld->cfg, o, hook_names[i], false, &cmd, ld->err) != 0)
            return -1;
        if (cmd == NULL)
            continue;
        if (cmd[0] == '\0')
            return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(o, hook_names[i]),
                             "an empty hook; leave it out instead");
        if (check_hook(ld, cJSON_GetObjectItemCaseSensitive(o, hook_names[i]), i, cmd) != 0)
            return -1;
        h->cmd[i] = xstrdup(cmd);
    }
    return 0;
}

static int load_lock(struct loader *ld, const cJSON *root)
{
    const cJSON *o = cfg_get(ld->cfg, root, "lock", cJSON_Object, false, ld->err);

    ld->inv->lock.lease_ms = 60000;
    if (o == NULL)
        return cfg_has(root, "lock") ? -1 : 0;
    if (cfg_check_object(ld->cfg, o, lock_keys, ld->err) != 0 ||
        get_ms(ld, o, "lease_seconds", 86400, &ld->inv->lock.lease_ms) != 0)
        return -1;
    if (ld->inv->lock.lease_ms < 3000)
        return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(o, "lease_seconds"),
                         "a lease shorter than 3 s would expire between renewals");
    return 0;
}

/*
 * An ssh target's host: one name or address that known_hosts can hold and OpenSSH's matching
 * takes as itself (knownhosts_host_problem), so that `hosts trust` can write its key and the
 * check finds it. "[host]" and "[host]:port" (as ssh and known_hosts write them) are taken
 * apart; the port in them must not contradict "port".
 */
static int load_host(struct loader *ld, const cJSON *o, const char *host, struct inv_target *t,
                     int64_t *port)
{
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(o, "host");
    const char *why, *close;
    size_t at = 0, len = strlen(host), skip = 0;
    char *name;

    if (host[0] == '[' && (close = strchr(host, ']')) != NULL &&
        (close[1] == '\0' || close[1] == ':')) {
        if (close[1] == ':') {
            char *end;
            long p;

            errno = 0;
            p = strtol(close + 2, &end, 10);
            if (close[2] < '0' || close[2] > '9' || *end != '\0' || errno != 0 || p < 1 ||
                p > 65535)
                return cfg_error(ld->cfg, ld->err, node,
                                 "the port after [host]: must be a number from 1 to 65535");
            if (*port > 0 && *port != p)
                return cfg_error(ld->cfg, ld->err, node,
                                 "port %ld here, but \"port\" says %lld; give it once", p,
                                 (long long)*port);
            *port = p;
        }
        skip = 1;
        len = (size_t)(close - host) - 1;
    }
    name = xstrndup(host + skip, len);
    if (name[0] == '-') {
        free(name);
        return cfg_error(ld->cfg, ld->err, node,
                         "not a host name or address: it starts with \"-\" (an option to ssh)");
    }
    why = knownhosts_host_problem(name, &at);
    if (why != NULL) {
        unsigned cp = 0;
        size_t ctl = control_at(name, &cp), pos = skip + 1;

        for (len = 0; len < at; len++) /* at, in characters */
            pos += ((unsigned char)name[len] & 0xc0) != 0x80;
        if (name[0] == '\0')
            cfg_error(ld->cfg, ld->err, node, "an empty host; give a host name or address");
        else if (ctl > 0)
            cfg_error(ld->cfg, ld->err, node,
                      "not a host name or address: character %zu is a control character "
                      "(U+%04X)",
                      ctl + skip, cp);
        else if ((unsigned char)name[at] >= 0x80)
            cfg_error(ld->cfg, ld->err, node, "not a host name or address: character %zu %s", pos,
                      why);
        else
            cfg_error(ld->cfg, ld->err, node,
                      "not a host name or address: \"%c\" (character %zu) %s; give one host "
                      "name or address, and its port in \"port\"",
                      name[at], pos, why);
        free(name);
        return -1;
    }
    t->host = name;
    return 0;
}

static int load_target(struct loader *ld, const cJSON *o, struct inv_target *t,
                       const char *env_deploy_path, bool need_deploy_path)
{
    const char *name = NULL, *host = NULL, *user = NULL;
    const cJSON *labels, *item;
    int transport = INV_SSH;
    int64_t port = -1;
    size_t n = 0;

    if (cfg_check_object(ld->cfg, o, target_keys, ld->err) != 0 ||
        get_name(ld, o, "name", true, &name) != 0)
        return -1;
    t->name = xstrdup(name);
    {
        const char *tr = NULL;

        if (get_text(ld, o, "transport", false, &tr) != 0)
            return -1;
        if (tr != NULL && strcmp(tr, "local") == 0)
            transport = INV_LOCAL;
        else if (tr != NULL && strcmp(tr, "ssh") != 0)
            return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(o, "transport"),
                             "unknown transport \"%.40s\"; expected ssh or local", tr);
    }
    t->transport = (enum inv_transport)transport;
    if (cfg_get_string(ld->cfg, o, "host", transport == INV_SSH, &host, ld->err) != 0 ||
        get_text(ld, o, "user", false, &user) != 0 ||
        cfg_get_int(ld->cfg, o, "port", false, 1, 65535, &port, ld->err) != 0)
        return -1;
    if (transport == INV_LOCAL && (host != NULL || port > 0 || user != NULL))
        return cfg_error(ld->cfg, ld->err, o,
                         "target \"%s\" is local: host, port and user apply to ssh targets",
                         t->name);
    if (host != NULL && load_host(ld, o, host, t, &port) != 0)
        return -1;
    t->port = port > 0 ? (unsigned)port : ld->inv->ssh.port;
    t->user = xstrdup(user != NULL ? user : ld->inv->ssh.user);
    labels = cfg_get(ld->cfg, o, "labels", cJSON_Array, false, ld->err);
    if (labels == NULL && cfg_has(o, "labels"))
        return -1;
    t->labels = xcalloc(1, sizeof *t->labels);
    if (labels != NULL) {
        cJSON_ArrayForEach(item, labels)
        {
            if (!cJSON_IsString(item) || !valid_name(item->valuestring))
                return cfg_error(ld->cfg, ld->err, item,
                                 "a label is a name: letters, digits and . _ : @ + -");
            t->labels = strv_push(t->labels, &n, xstrdup(item->valuestring));
        }
    }
    if (env_deploy_path != NULL)
        t->deploy_path = xstrdup(env_deploy_path);
    if (get_abs_path(ld, o, "deploy_path", &t->deploy_path) != 0)
        return -1;
    if (t->deploy_path == NULL && need_deploy_path)
        return cfg_error(ld->cfg, ld->err, o,
                         "target \"%s\" has no deploy_path (give it here, or for its "
                         "environment)",
                         t->name);
    return 0;
}

/* The router's own ports (its frontend, and haproxy's stats socket on TCP) against the
 * slots': an instance started on the router's port could not bind it, or would take the
 * router's traffic. Only where they can meet: a router on this machine's loopback or on
 * every address, or on a target's host. */
static int check_router_ports(struct loader *ld, const cJSON *o, const struct inv_env *e)
{
    static const char *const keys[] = {"frontend", "address"};
    const cJSON *root = cfg_root(ld->cfg);
    const cJSON *svc =
        cJSON_GetObjectItemCaseSensitive(cfg_has(o, "service") ? o : root, "service");
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(svc, "ports");
    size_t k, i;
    int s;

    if (!e->has_service || e->router.kind == NULL)
        return 0;
    for (k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e->router.config, keys[k]);
        const char *colon;
        char host[256];
        unsigned port;
        bool meets = false;

        if (!cJSON_IsString(v) || (colon = host_port(v->valuestring, &port)) == NULL)
            continue;
        snprintf(host, sizeof host, "%.*s", (int)(colon - v->valuestring), v->valuestring);
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
        }
        if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
            strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
            strcmp(host, "::1") == 0)
            meets = true;
        for (i = 0; i < e->ntargets && !meets; i++)
            meets = e->targets[i].transport == INV_LOCAL ||
                    (e->targets[i].host != NULL && strcmp(e->targets[i].host, host) == 0);
        if (!meets)
            continue;
        for (s = 0; s < INV_SLOTS; s++) {
            if (e->service.ports[s] != port)
                continue;
            return cfg_error(ld->cfg, ld->err,
                             cJSON_GetObjectItemCaseSensitive(ports, slot_keys[s]) != NULL
                                 ? cJSON_GetObjectItemCaseSensitive(ports, slot_keys[s])
                                 : o,
                             "%s's port %u is the router's (router.%s \"%s\"%s%s): the instance "
                             "could not listen there, or would take the router's traffic; give "
                             "the slot a port of its own",
                             slot_keys[s], port, keys[k], v->valuestring,
                             e->name != NULL ? ", environment " : "",
                             e->name != NULL ? e->name : "");
        }
    }
    return 0;
}

/* "rollout": the environment's own or the top level's, loaded for it, and its strategy
 * against the environment's router: weights need a router that can split traffic. */
static int load_rollout(struct loader *ld, const cJSON *o, struct inv_env *e)
{
    const cJSON *node = cfg_has(o, "rollout")
                            ? cJSON_GetObjectItemCaseSensitive(o, "rollout")
                            : cJSON_GetObjectItemCaseSensitive(cfg_root(ld->cfg), "rollout");
    const cJSON *where;

    if (node == NULL)
        return 0;
    e->has_rollout = true;
    if (rolloutcfg_load(ld->cfg, node, STRATEGY_CANARY, &e->rollout, ld->err) != 0)
        return -1;
    if (!rollout_strategy_weighted(e->rollout.spec.strategy))
        return 0;
    where = cJSON_GetObjectItemCaseSensitive(node, "strategy");
    if (where == NULL)
        where = node;
    if (e->router.kind == NULL)
        return cfg_error(ld->cfg, ld->err, where,
                         "the %s strategy moves traffic by weights, and environment %s has no "
                         "router: give it one (\"router\", docs/config.md), or use canary-hosts "
                         "or rolling",
                         rollout_strategy_name(e->rollout.spec.strategy), e->name);
    if (e->router.kind->no_weights)
        return cfg_error(ld->cfg, ld->err, where,
                         "the %s strategy moves traffic by weights, and environment %s's router "
                         "(%s) cannot split it: use canary-hosts or rolling, or a router that "
                         "sets weights",
                         rollout_strategy_name(e->rollout.spec.strategy), e->name,
                         e->router.kind->name);
    return 0;
}

static int load_env(struct loader *ld, const cJSON *o, struct inv_env *e)
{
    const cJSON *targets, *item;
    char *deploy_path = NULL;
    size_t i, j;
    int rc = 0;

    e->name = xstrdup(o->string);
    if (!valid_name(e->name))
        return cfg_key_error(ld->cfg, ld->err, o,
                             "not a valid environment name: letters, digits and . _ : @ + -");
    if (cfg_check_object(ld->cfg, o, env_keys, ld->err) != 0 ||
        get_abs_path(ld, o, "deploy_path", &deploy_path) != 0)
        return -1;
    targets = cfg_get(ld->cfg, o, "targets", cJSON_Array, true, ld->err);
    if (targets == NULL) {
        free(deploy_path);
        return -1;
    }
    e->ntargets = (size_t)cJSON_GetArraySize(targets);
    if (e->ntargets == 0) {
        free(deploy_path);
        return cfg_error(ld->cfg, ld->err, targets, "an environment needs at least one target");
    }
    e->targets = xcalloc(e->ntargets, sizeof *e->targets);
    i = 0;
    cJSON_ArrayForEach(item, targets)
    {
        if (load_target(ld, item, &e->targets[i], deploy_path, true) != 0) {
            rc = -1;
            break;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(e->targets[j].name, e->targets[i].name) == 0) {
                rc = cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(item, "name"),
                               "duplicate target name \"%s\" in environment \"%s\"",
                               e->targets[i].name, e->name);
                break;
            }
        }
        if (rc != 0)
            break;
        i++;
    }
    free(deploy_path);
    if (rc == 0 && cfg_has(o, "service")) {
        const cJSON *so = cfg_get(ld->cfg, o, "service", cJSON_Object, true, ld->err);

        if (so == NULL || load_service(ld, so, &e->service) != 0)
            return -1;
        e->has_service = true;
    } else if (rc == 0 && ld->inv->has_service) {
        service_copy(&e->service, &ld->inv->service);
        e->has_service = true;
    }
    if (rc == 0 && cfg_has(o, "router")) {
        if (load_router(ld, o, &e->router) != 0)
            return -1;
    } else if (rc == 0 && ld->inv->router.kind != NULL) {
        e->router.kind = ld->inv->router.kind;
        e->router.config = cJSON_Duplicate(ld->inv->router.config, true);
        if (load_router_on(ld, cJSON_GetObjectItemCaseSensitive(cfg_root(ld->cfg), "router"),
                           &e->router) != 0)
            return -1;
    }
    if (rc == 0 && cfg_has(o, "metrics")) {
        if (load_metrics(ld, o, &e->metrics) != 0)
            return -1;
    } else if (rc == 0 && ld->inv->metrics.kind != NULL) {
        metricsrc_spec_copy(&e->metrics, &ld->inv->metrics);
    }
    if (rc == 0 && load_rollout(ld, o, e) != 0)
        return -1;
    if (rc == 0 && check_metrics_router(ld, o, e) != 0)
        return -1;
    if (rc == 0 && cfg_has(o, "probes")) {
        if (load_probes(ld, o, &e->probes, &e->nprobes) != 0)
            return -1;
    } else if (rc == 0 && ld->inv->nprobes > 0) {
        e->probes = xcalloc(ld->inv->nprobes, sizeof *e->probes);
        for (e->nprobes = 0; e->nprobes < ld->inv->nprobes; e->nprobes++)
            probe_spec_copy(&e->probes[e->nprobes], &ld->inv->probes[e->nprobes]);
    }
    if (rc == 0 && cfg_has(o, "lock_target")) {
        const char *lt = NULL;

        if (get_text(ld, o, "lock_target", false, &lt) != 0)
            return -1;
        for (e->lock_target = 0;
             e->lock_target < e->ntargets && strcmp(e->targets[e->lock_target].name, lt) != 0;
             e->lock_target++)
            ;
        if (e->lock_target == e->ntargets)
            return cfg_error(ld->cfg, ld->err, cJSON_GetObjectItemCaseSensitive(o, "lock_target"),
                             "no target \"%.60s\" in environment \"%s\"", lt, e->name);
    }
    if (rc == 0)
        rc = check_router_ports(ld, o, e);
    return rc;
}

static void target_done(struct inv_target *t)
{
    free(t->name);
    free(t->host);
    free(t->user);
    strv_free(t->labels);
    free(t->deploy_path);
}

void inventory_free(struct inventory *inv)
{
    size_t i, j;

    if (inv == NULL)
        return;
    for (i = 0; i < inv->nenvs; i++) {
        for (j = 0; j < inv->envs[i].ntargets; j++)
            target_done(&inv->envs[i].targets[j]);
        free(inv->envs[i].targets);
        free(inv->envs[i].name);
        service_done(&inv->envs[i].service);
        probes_free(inv->envs[i].probes, inv->envs[i].nprobes);
        cJSON_Delete(inv->envs[i].router.config);
        router_on_free(&inv->envs[i].router);
        metricsrc_spec_done(&inv->envs[i].metrics);
        if (inv->envs[i].has_rollout)
            rolloutcfg_done(&inv->envs[i].rollout);
    }
    cJSON_Delete(inv->router.config);
    router_on_free(&inv->router);
    metricsrc_spec_done(&inv->metrics);
    free(inv->envs);
    service_done(&inv->service);
    probes_free(inv->probes, inv->nprobes);
    free(inv->default_env);
    free(inv->app.name);
    free(inv->app.repository);
    free(inv->app.tag_pattern);
    for (i = 0; i < HOOK_COUNT; i++)
        free(inv->hooks.cmd[i]);
    free(inv->ssh.user);
    strv_free(inv->ssh.identities);
    free(inv->ssh.known_hosts);
    free(inv->path);
    free(inv);
}

/* n3.json in dir or the nearest parent that has one. */
static char *find_config(struct err *err)
{
    char dir[PATH_MAX], *slash;

    if (getcwd(dir, sizeof dir) == NULL)
        return err_set(err, "cannot read the current directory: %s", strerror(errno)), NULL;
    for (;;) {
        char *path = xasprintf("%s/%s", strcmp(dir, "/") == 0 ? "" : dir, INVENTORY_FILE);

        if (access(path, F_OK) == 0)
            return path;
        free(path);
        if (strcmp(dir, "/") == 0)
            break;
        slash = strrchr(dir, '/');
        if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
    }
    err_set(err,
            "no %s here or in a parent directory; give one with -c FILE or N3CTL_CONFIG "
            "(docs/config.md describes it)",
            INVENTORY_FILE);
    return NULL;
}

int inventory_load(const char *path, struct inventory **out, struct err *err)
{
    struct inventory *inv;
    struct loader ld;
    struct cfg *c;
    const cJSON *root, *envs, *e;
    const char *def = NULL;
    char *found = NULL;
    int64_t version = INVENTORY_VERSION;
    size_t i = 0;

    if (path == NULL && (path = getenv("N3CTL_CONFIG")) != NULL && path[0] == '\0')
        path = NULL;
    if (path == NULL && (path = found = find_config(err)) == NULL)
        return -1;
    if (cfg_load_file(path, 0, &c, err) != 0) {
        free(found);
        return -1;
    }
    inv = xcalloc(1, sizeof *inv);
    inv->path = xstrdup(path);
    free(found);
    ssh_defaults(&inv->ssh);
    ld = (struct loader){c, inv, err};
    root = cfg_root(c);
    if (cfg_check_object(c, root, top_keys, err) != 0 ||
        cfg_get_int(c, root, "version", false, INVENTORY_VERSION, INVENTORY_VERSION, &version,
                    err) != 0 ||
        load_ssh(&ld, root) != 0 || load_app(&ld, root) != 0 || load_hooks(&ld, root) != 0 ||
        load_lock(&ld, root) != 0)
        goto fail;
    if (cfg_has(root, "service")) {
        const cJSON *so = cfg_get(c, root, "service", cJSON_Object, true, err);

        if (so == NULL || load_service(&ld, so, &inv->service) != 0)
            goto fail;
        inv->has_service = true;
    }
    if (cfg_has(root, "probes") && load_probes(&ld, root, &inv->probes, &inv->nprobes) != 0)
        goto fail;
    if (cfg_has(root, "router") && load_router(&ld, root, &inv->router) != 0)
        goto fail;
    if (cfg_has(root, "metrics") && load_metrics(&ld, root, &inv->metrics) != 0)
        goto fail;
    envs = cfg_get(c, root, "environments", cJSON_Object, true, err);
    if (envs == NULL)
        goto fail;
    inv->nenvs = (size_t)cJSON_GetArraySize(envs);
    if (inv->nenvs == 0) {
        cfg_error(c, err, envs, "no environments; give at least one with its targets");
        goto fail;
    }
    inv->envs = xcalloc(inv->nenvs, sizeof *inv->envs);
    cJSON_ArrayForEach(e, envs)
    {
        if (!cJSON_IsObject(e)) {
            cfg_error(c, err, e, "expected an object (an environment), got %s", cfg_type_name(e));
            goto fail;
        }
        if (load_env(&ld, e, &inv->envs[i++]) != 0)
            goto fail;
    }
    if (get_text(&ld, root, "default_environment", false, &def) != 0)
        goto fail;
    if (def != NULL) {
        for (i = 0; i < inv->nenvs && strcmp(inv->envs[i].name, def) != 0; i++)
            ;
        if (i == inv->nenvs) {
            cfg_error(c, err, cJSON_GetObjectItemCaseSensitive(root, "default_environment"),
                      "no environment \"%.60s\" in \"environments\"", def);
            goto fail;
        }
        inv->default_env = xstrdup(def);
    }
    cfg_free(c);
    *out = inv;
    return 0;
fail:
    cfg_free(c);
    inventory_free(inv);
    return -1;
}

const char *inventory_path(const struct inventory *inv)
{
    return inv->path;
}

const struct inv_ssh *inventory_ssh(const struct inventory *inv)
{
    return &inv->ssh;
}

const struct inv_app *inventory_app(const struct inventory *inv)
{
    return &inv->app;
}

const struct inv_hooks *inventory_hooks(const struct inventory *inv)
{
    return &inv->hooks;
}

const struct inv_lock_cfg *inventory_lock(const struct inventory *inv)
{
    return &inv->lock;
}

const char *inventory_hook_name(enum inv_hook h)
{
    return hook_names[h];
}

const struct inv_router *inv_env_router(const struct inv_env *env)
{
    return env->router.kind != NULL ? &env->router : NULL;
}

const struct rolloutcfg *inv_env_rollout(const struct inv_env *env)
{
    return env->has_rollout ? &env->rollout : NULL;
}

const struct metricsrc_spec *inv_env_metrics(const struct inv_env *env)
{
    return env->metrics.kind != NULL ? &env->metrics : NULL;
}

const struct probe_spec *inv_env_probes(const struct inv_env *env, size_t *n)
{
    *n = env->nprobes;
    return env->probes;
}

const struct inv_service *inv_env_service(const struct inv_env *env)
{
    return env->has_service ? &env->service : NULL;
}

const char *inventory_service_mode_name(enum inv_service_mode m)
{
    return service_modes[m];
}

const struct inv_target *inv_env_lock_target(const struct inv_env *env)
{
    return &env->targets[env->lock_target];
}

int inventory_env(const struct inventory *inv, const char *name, const struct inv_env **out,
                  struct err *err)
{
    struct buf names;
    size_t i;

    if (name == NULL)
        name = inv->default_env;
    if (name == NULL && inv->nenvs == 1) {
        *out = &inv->envs[0];
        return 0;
    }
    for (i = 0; name != NULL && i < inv->nenvs; i++) {
        if (strcmp(inv->envs[i].name, name) == 0) {
            *out = &inv->envs[i];
            return 0;
        }
    }
    buf_init(&names);
    for (i = 0; i < inv->nenvs; i++)
        buf_addf(&names, "%s%s", i ? ", " : "", inv->envs[i].name);
    if (name == NULL)
        err_set(err,
                "%s has several environments and no default_environment; choose one with -e (%s)",
                inv->path, names.data);
    else
        err_set(err, "no environment \"%.60s\" in %s; there are: %s", name, inv->path, names.data);
    buf_done(&names);
    return -1;
}

const char *inv_env_name(const struct inv_env *env)
{
    return env->name;
}

size_t inv_env_ntargets(const struct inv_env *env)
{
    return env->ntargets;
}

const struct inv_target *inv_env_target(const struct inv_env *env, size_t i)
{
    return &env->targets[i];
}

const struct inv_target *inv_env_find(const struct inv_env *env, const char *name)
{
    size_t i;

    for (i = 0; i < env->ntargets; i++) {
        if (strcmp(env->targets[i].name, name) == 0)
            return &env->targets[i];
    }
    return NULL;
}

static bool has_label(const struct inv_target *t, const char *label)
{
    size_t i;

    for (i = 0; t->labels[i] != NULL; i++) {
        if (strcmp(t->labels[i], label) == 0)
            return true;
    }
    return false;
}

int inv_env_select(void *arg, const char *selector, char ***names, size_t *n, struct err *err)
{
    const struct inv_env *env = arg;
    const char *label = strncmp(selector, "label:", 6) == 0 ? selector + 6 : NULL;
    bool all = strcmp(selector, "all") == 0;
    size_t i, before = *n;

    for (i = 0; i < env->ntargets; i++) {
        const struct inv_target *t = &env->targets[i];

        if (all || (label != NULL && has_label(t, label)) ||
            (label == NULL && strcmp(t->name, selector) == 0))
            *names = strv_push(*names, n, xstrdup(t->name));
    }
    if (*n > before)
        return 0;
    if (label != NULL)
        return err_set(err, "no target of environment \"%s\" has the label \"%.60s\"", env->name,
                       label);
    {
        const char **cands = xcalloc(env->ntargets + 1, sizeof *cands);
        const char *hint;

        for (i = 0; i < env->ntargets; i++)
            cands[i] = env->targets[i].name;
        hint = cfg_suggest(selector, cands);
        if (hint != NULL)
            err_set(err, "no target \"%.60s\" in environment \"%s\"; did you mean \"%s\"?",
                    selector, env->name, hint);
        else
            err_set(err,
                    "no target \"%.60s\" in environment \"%s\" (give a target name, "
                    "label:NAME or all)",
                    selector, env->name);
        free(cands);
    }
    return -1;
}
