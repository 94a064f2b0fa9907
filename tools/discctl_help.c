/* SPDX-License-Identifier: MIT */
/*
 * discctl_help.c — the manual pages printed by `discctl --help` and
 * `discctl CMD --help` (docs/DISCCTL.md says the same at more length).
 */
#include <stdio.h>
#include <string.h>

#include "discctl.h"

static const char common_opts[] =
    "COMMON OPTIONS\n"
    "    --name NAME\n"
    "        Registry name: the shared-memory segment /dev/shm/NAME written by\n"
    "        the discd started with the same --name. Default: $DISCSHM_NAME,\n"
    "        else \"discshm\".\n"
    "    --socket PATH\n"
    "        discd's control socket, used by register, deregister and status.\n"
    "        Default: $XDG_RUNTIME_DIR/discd/NAME.sock, else /run/discd/NAME.sock\n"
    "        for root, else /tmp/discd/NAME.sock (the daemon's default).\n"
    "    -j, --json\n"
    "        Machine-readable output: one JSON document (watch: one JSON object\n"
    "        per line). Field names follow docs/PROTOCOL.md.\n"
    "    -h, --help\n"
    "        Show this manual.\n"
    "    -V, --version\n"
    "        Print discctl's version and exit (before the command name only).\n"
    "\n"
    "    Common options may appear before or after the command name.\n";

static const char exit_status[] =
    "EXIT STATUS\n"
    "    0   success\n"
    "    1   the operation failed (e.g. discd refused a registration; the\n"
    "        reason is printed)\n"
    "    2   usage error (bad command line)\n"
    "    3   not found: no such service or instance, or nothing matched\n"
    "    4   registry or daemon unavailable: no segment, the writer is dead\n"
    "        (status), or discd's socket does not answer\n"
    "    5   stale (services, get, pick, endpoints): the data was printed, but\n"
    "        the writer is dead or stopped, ZooKeeper has been degraded longer\n"
    "        than --max-degraded, or the snapshot came from the file cache; a\n"
    "        warning on stderr says which. --allow-stale makes this 0.\n";

/* The staleness options of the reading commands. */
#define STALE_OPTS                                                                                 \
    "    --allow-stale       stale data exits 0 (the warning is still printed)\n"                  \
    "    --max-degraded MS   ZooKeeper degraded for longer than MS counts as\n"                    \
    "                        stale (default 10000; 0: as soon as degraded)\n"

static const char top[] =
    "NAME\n"
    "    discctl - inspect and change the discshm service registry\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl [COMMON OPTIONS] COMMAND [ARGS...]\n"
    "    discctl help [COMMAND]\n"
    "\n"
    "DESCRIPTION\n"
    "    discctl is the operator's tool for discd, the per-host service-discovery\n"
    "    daemon. Reads (services, get, pick, endpoints, watch, status, dump) come straight\n"
    "    from the registry's shared-memory segment, exactly as services see it,\n"
    "    without asking the daemon. Writes (register, deregister) go through\n"
    "    discd's control socket.\n"
    "\n"
    "COMMANDS\n"
    "    register     register an instance, print its id\n"
    "    deregister   remove instances by id\n"
    "    services     list services: versions and instance counts (alias: ls)\n"
    "    get          list the instances of a service, with filters\n"
    "    pick         choose one instance (random or by key), print its address\n"
    "    endpoints    list endpoints with latencies\n"
    "    watch        print registry changes as they are published\n"
    "    status       segment and daemon health\n"
    "    dump         the whole registry as JSON\n"
    "    confirm      apply removals held by discd's protection\n"
    "    metrics      discd's metrics in the Prometheus text format\n"
    "    reload       re-read discd's static service definitions\n"
    "    pass         report a ttl check passing (also: warn, fail)\n"
    "    warn         report a ttl check in warning\n"
    "    fail         report a ttl check failing\n"
    "    maint        take instances out of rotation, or put them back\n"
    "\n"
    "    Run 'discctl COMMAND --help' for a command's manual.\n"
    "\n"
    "%s\n"
    "%s\n"
    "ENVIRONMENT\n"
    "    DISCSHM_NAME      default registry name\n"
    "    XDG_RUNTIME_DIR   base of the default socket path\n"
    "\n"
    "EXAMPLES\n"
    "    discctl services\n"
    "    discctl get orders --az eu-west-1a --tag env=prod\n"
    "    curl \"http://$(discctl pick orders --health passing)/healthz\"\n"
    "    discctl --json dump > registry.json\n"
    "    id=$(discctl register --service orders --address 10.0.0.7:8080 --check tcp)\n"
    "    discctl deregister \"$id\"\n"
    "\n"
    "SEE ALSO\n"
    "    discd(8), discd.conf(5), libdiscshm(3), docs/DISCCTL.md, docs/PROTOCOL.md\n";

static const char h_register[] =
    "NAME\n"
    "    discctl register - register a service instance with discd\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl register --service NAME --address ADDR [OPTIONS...]\n"
    "\n"
    "DESCRIPTION\n"
    "    Sends a register request over discd's control socket and prints the\n"
    "    new instance's id (a UUID; with --json: {\"id\":\"...\"}). The instance\n"
    "    is visible in the segment as soon as discd publishes it.\n"
    "\n"
    "    discctl exits after registering, so the default check is 'none' (the\n"
    "    instance stays until deregistered). Choose tcp, http or ttl to let\n"
    "    discd remove it when it dies, or 'session' with --hold: discctl then\n"
    "    stays in the foreground answering discd's pings, and the instance is\n"
    "    removed as soon as discctl exits (SIGTERM, SIGINT, or killed) — handy\n"
    "    to wrap a program that cannot register itself. If discd restarts,\n"
    "    discctl reconnects (backoff up to 2 s) and re-attaches the instance by\n"
    "    id within discd's --session-grace; had discd lost it, discctl\n"
    "    registers it again and prints the new id on a line of its own.\n"
    "\n"
    "INSTANCE OPTIONS\n"
    "    --service NAME      service name, 1-255 chars of [A-Za-z0-9._:-] (required)\n"
    "    --address ADDR      host:port ([v6]:port), or an absolute path with\n"
    "                        --network unix (required)\n"
    "    --network tcp|unix  address kind (default tcp)\n"
    "    --version VERSION   service version (default \"\")\n"
    "    --host HOST         host id (default: discd's)\n"
    "    --az AZ             availability zone (default: discd's)\n"
    "    --weight N          load-balancing weight 1-10000 (default 10)\n"
    "    --tag KEY=VALUE     a tag; repeat for more (at most 32)\n"
    "    --endpoint SPEC     an endpoint; repeat for more (at most 64). SPEC is\n"
    "                        NAME[,request=TYPE][,response=TYPE][,mean_us=N][,p95_us=N]\n"
    "\n"
    "CHECK OPTIONS\n"
    "    --check TYPE        none (default), session, tcp, http or ttl\n"
    "    --interval MS       check interval (default: discd's, 1000)\n"
    "    --timeout MS        per-check timeout, below the interval (default 500)\n"
    "    --misses N          consecutive misses before removal (default 3)\n"
    "    --ttl MS            ttl checks: the instance must pass this often\n"
    "    --path PATH         http checks: request path (default /)\n"
    "    --target HOST:PORT  tcp/http checks: where to probe (default: --address)\n"
    "    --deregister-after MS\n"
    "                        tcp/http/ttl checks: after --misses failures keep the\n"
    "                        instance as critical (out of rotation) and remove it\n"
    "                        only once it stayed critical MS; passing again\n"
    "                        restores it. 0 (default): remove at once\n"
    "    --hold              stay running and keep the session answered\n"
    "                        (requires --check session)\n"
    "\n"
    "%s\n"
    "%s\n"
    "EXAMPLES\n"
    "    discctl register --service orders --version 2.1.0 --address 10.0.0.7:8080 \\\n"
    "        --tag env=prod --endpoint Create,request=CreateReq,response=Order \\\n"
    "        --check http --path /healthz\n"
    "    discctl register --service batch --address 127.0.0.1:9000 --check session \\\n"
    "        --hold &\n";

static const char h_deregister[] =
    "NAME\n"
    "    discctl deregister - remove instances from the registry\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl deregister ID [ID...]\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks discd to remove each instance. Only the user that registered an\n"
    "    instance (or root) may remove it. Every id is tried; the exit status\n"
    "    is that of the first failure (3 if an id does not exist).\n"
    "\n"
    "%s\n"
    "%s";

static const char h_ls[] =
    "NAME\n"
    "    discctl services - list services\n"
    "    discctl ls - the same (an alias)\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl services [--prefix PREFIX] [--json]\n"
    "    discctl ls [--prefix PREFIX] [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Lists every service in the segment, sorted by name, with its versions\n"
    "    (and how many instances run each) and its instance count.\n"
    "    Human output columns: SERVICE, INSTANCES, VERSIONS. --json prints\n"
    "    {\"services\":[{\"name\",\"instances\",\"versions\":[{\"version\",\"instances\"}]}]}.\n"
    "\n"
    "OPTIONS\n"
    "    --prefix PREFIX     only services whose name starts with PREFIX\n" STALE_OPTS "\n"
    "%s\n"
    "%s"
    "    An empty registry is not an error (exit 0, nothing listed).\n";

static const char h_get[] =
    "NAME\n"
    "    discctl get - list the instances of a service\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl get SERVICE [FILTERS...] [--json]\n"
    "    discctl get --prefix PREFIX [FILTERS...] [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints the instances of SERVICE (or of every service whose name starts\n"
    "    with PREFIX) that match every filter given, sorted by service then id.\n"
    "    The filtering is libdiscshm's (struct disc_filter). Human output\n"
    "    columns: ID, VERSION, ADDRESS, HOST, AZ, WEIGHT, HEALTH, ORIGIN, AGE,\n"
    "    TAGS (and SERVICE first without a SERVICE operand). --json prints\n"
    "    {\"instances\":[...]} with every field, tags and endpoints included.\n"
    "\n"
    "FILTERS\n"
    "    --prefix PREFIX     service name starts with PREFIX\n"
    "    --version V         exact version\n"
    "    --min-version V     version >= V (semantic-version order)\n"
    "    --az AZ             availability zone\n"
    "    --host HOST         host id\n"
    "    --tag KEY=VALUE     tag KEY has VALUE; --tag KEY: has tag KEY.\n"
    "                        Repeat for more (all must hold, at most 8)\n"
    "    --endpoint NAME     serves this endpoint\n"
    "    --health STATE      passing, warning, critical, unknown, maintenance,\n"
    "                        not-critical or any. Default not-critical: only\n"
    "                        instances in rotation (neither critical nor in\n"
    "                        maintenance)\n"
    "    --all               any health (the same as --health any)\n"
    "\n"
    "OPTIONS\n" STALE_OPTS "\n"
    "%s\n"
    "%s"
    "    3 means SERVICE does not exist or no instance matched (stderr says\n"
    "    which, and how many instances only the health condition hid).\n";

static const char h_pick[] =
    "NAME\n"
    "    discctl pick - choose one instance of a service and print its address\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl pick SERVICE [FILTERS...] [--by random|hash] [--key KEY] [--json]\n"
    "    discctl pick --prefix PREFIX [FILTERS...] [--by random|hash] [--key KEY]\n"
    "\n"
    "DESCRIPTION\n"
    "    Chooses one instance among those get would list (same FILTERS, see\n"
    "    'discctl get --help') with a libdiscshm picker, and prints only its\n"
    "    address, one line, for shell scripts. --json prints the instance\n"
    "    object instead (the fields of 'get --json').\n"
    "    Instances with weight 0 are never chosen; by default neither are\n"
    "    critical ones nor those in maintenance (--health / --all change it).\n"
    "\n"
    "OPTIONS\n"
    "    --by random         weighted random (weights as registered); the\n"
    "                        default without --key\n"
    "    --by hash           consistent (weighted rendezvous) hashing on --key:\n"
    "                        the same key picks the same instance as long as\n"
    "                        the matching set does not change, on every host;\n"
    "                        the default with --key\n"
    "    --key KEY           the hash key (required by --by hash)\n" STALE_OPTS "\n"
    "%s\n"
    "%s"
    "    3 means SERVICE does not exist or no instance matched.\n"
    "\n"
    "EXAMPLES\n"
    "    addr=$(discctl pick orders --az eu-1a --health not-critical) || exit\n"
    "    discctl pick sessions --key \"$USER_ID\"\n";

static const char h_endpoints[] =
    "NAME\n"
    "    discctl endpoints - list endpoints and their latencies\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl endpoints [SERVICE] [--allow-stale] [--max-degraded MS] [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Lists every (service, version, endpoint) in the registry, or of\n"
    "    SERVICE only, aggregated over the instances serving it. Columns:\n"
    "    ENDPOINT (service.endpoint), VERSION, INSTANCES, MEAN_US (mean of the\n"
    "    reported means), P95_US (largest reported upper-95), REQUEST,\n"
    "    RESPONSE. Latencies are '-' when no instance reported one.\n"
    "\n"
    "OPTIONS\n" STALE_OPTS "\n"
    "%s\n"
    "%s"
    "    3 means SERVICE does not exist.\n";

static const char h_watch[] =
    "NAME\n"
    "    discctl watch - print registry changes as they are published\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl watch [SERVICE] [--count N] [--timeout SECONDS] [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Blocks on the segment's change notification (a futex; no socket, and\n"
    "    no busy polling), and after each publication compares the new snapshot with\n"
    "    the previous one. First prints one line saying what is watched, then\n"
    "    one line per change:\n"
    "        + ID SERVICE VERSION ADDRESS      an instance appeared\n"
    "        - ID SERVICE VERSION ADDRESS      an instance disappeared\n"
    "        ~ ID SERVICE health OLD -> NEW    an instance's health changed\n"
    "    With --json the first line is {\"event\":\"start\",\"generation\":G,\n"
    "    \"instances\":N} and each change is {\"event\":\"added\"|\"removed\"|\n"
    "    \"changed\",\"generation\":G,\"instance\":{...}}. Output is line-buffered.\n"
    "    A restarted discd is followed to its new segment; if the writer stops\n"
    "    heartbeating, watch says so once on stderr and keeps waiting.\n"
    "\n"
    "OPTIONS\n"
    "    SERVICE             only changes of this service\n"
    "    --count N           exit after N changes\n"
    "    --timeout SECONDS   exit after this long (status 0)\n"
    "\n"
    "%s\n"
    "%s";

static const char h_status[] =
    "NAME\n"
    "    discctl status - health of the registry segment and of discd\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl status [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    From the segment: generation, services and instances, when the last\n"
    "    snapshot was published, the writer's pid and heartbeat age, or 'dead\n"
    "    since TIME' and why (shut down, or no heartbeat), ZooKeeper state (standalone, connected, "
    "degraded since when\n"
    "    and why, last sync), file-cache and protection flags, memory use.\n"
    "    Then, if discd's socket answers, the daemon's own status (uptime,\n"
    "    connections, local instances, ZooKeeper session); an unreachable\n"
    "    socket is reported but is not an error by itself.\n"
    "    --json prints {\"segment\":{...},\"daemon\":{...}|null}.\n"
    "\n"
    "%s\n"
    "%s"
    "    4 also when the writer is dead: it shut down (at once after SIGTERM)\n"
    "    or its heartbeat is older than the threshold discd stored (8 ticks of\n"
    "    --heartbeat, at least 2 s).\n";

static const char h_dump[] =
    "NAME\n"
    "    discctl dump - the whole registry as JSON\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl dump\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints one JSON document read from the segment in one consistent\n"
    "    snapshot: {\"registry\":NAME,\"generation\":G,\"instances\":[...]}, the\n"
    "    instances sorted by service then id, each with every field (as\n"
    "    'get --json'). The output is always JSON.\n"
    "\n"
    "%s\n"
    "%s";

static const char h_ttl[] =
    "NAME\n"
    "    discctl pass, warn, fail - feed an instance's ttl check\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl pass ID [--note TEXT]\n"
    "    discctl warn ID [--note TEXT]\n"
    "    discctl fail ID [--note TEXT]\n"
    "\n"
    "DESCRIPTION\n"
    "    For an instance registered with --check ttl: pass says it is fine and\n"
    "    restarts its ttl; warn does the same but publishes it as warning\n"
    "    (still in rotation); fail publishes it as failing at once, as if all\n"
    "    its misses were spent: it is removed, or with --deregister-after kept\n"
    "    as critical (out of rotation) until a pass or until that time is up.\n"
    "    The note is kept by discd and shown by get (NOTE column, check.note\n"
    "    in --json). Only the registering user (or root) may report.\n"
    "\n"
    "OPTIONS\n"
    "    --note TEXT         a note for operators (at most 255 bytes)\n"
    "\n"
    "%s\n"
    "%s"
    "    1 when the instance has no ttl check or the user may not report for\n"
    "    it; 3 when there is no such instance.\n"
    "\n"
    "EXAMPLES\n"
    "    while sleep 10; do ./selftest && discctl pass \"$id\" || discctl fail \"$id\" \\\n"
    "        --note \"selftest failed\"; done\n";

static const char h_maint[] =
    "NAME\n"
    "    discctl maint - take instances out of rotation, or put them back\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl maint ID on|off [--reason TEXT]\n"
    "    discctl maint --service SERVICE on|off [--reason TEXT]\n"
    "\n"
    "DESCRIPTION\n"
    "    on: the instance (or every local instance of SERVICE the user may\n"
    "    manage) stays registered but is published as maintenance, so get and\n"
    "    pick (and libdiscshm's pickers) skip it by default; its check keeps\n"
    "    running. off: it is published with what its check says again.\n"
    "    Maintenance is kept across discd restarts. get --all (or --health\n"
    "    maintenance) lists such instances, with the reason. Prints one line\n"
    "    per instance changed (--json: {\"ids\":[...],\"maintenance\":BOOL}).\n"
    "\n"
    "OPTIONS\n"
    "    --service SERVICE   every local instance of SERVICE instead of one ID\n"
    "    --reason TEXT       why (with on; at most 255 bytes)\n"
    "\n"
    "%s\n"
    "%s"
    "    1 when discd refused (e.g. instances registered by another user);\n"
    "    3 when there is no such instance or no local instance of SERVICE.\n";

bool ctl_help(const char *cmd)
{
    static const struct {
        const char *name;
        const char *text;
    } pages[] = {
        {"register", h_register},
        {"deregister", h_deregister},
        {"services", h_ls},
        {"ls", h_ls},
        {"get", h_get},
        {"pick", h_pick},
        {"endpoints", h_endpoints},
        {"watch", h_watch},
        {"status", h_status},
        {"dump", h_dump},
        {"confirm", ctl_help_confirm},
        {"metrics", ctl_help_metrics},
        {"reload", ctl_help_reload},
        {"pass", h_ttl},
        {"warn", h_ttl},
        {"fail", h_ttl},
        {"maint", h_maint},
    };
    const char *text = NULL;
    if (!cmd)
        text = top;
    for (size_t i = 0; !text && i < sizeof(pages) / sizeof(pages[0]); i++)
        if (strcmp(cmd, pages[i].name) == 0)
            text = pages[i].text;
    if (!text)
        return false;
    printf(text, common_opts, exit_status);
    return true;
}
