// SPDX-License-Identifier: MIT
//
// CuratorPeer: a real Apache Curator x-discovery client for the interop tests
// (tests/interop/curator). It uses Curator's own ServiceDiscovery (Debian's
// libcurator-discovery-java), never a re-implementation, so what it writes
// and reads is exactly what Java services in a fleet write and read.
//
// Usage: java -cp <classpath> CuratorPeer --connect HOST:PORT [--base /services]
//            [--session-ms N] [--compat]
//   --compat: Curator's default JsonInstanceSerializer (compatible mode: no
//             "enabled" field is written); without it the serializer writes
//             every field, "enabled" included.
//
// Commands: one JSON object per line on stdin; one JSON object per line on
// stdout answers each (and a first {"op":"ready",...} line once connected):
//   {"op":"register","instance":{"name":..,"id":..,"address":..,"port":..,
//        "sslPort":..,"payload":{..},"enabled":true,"uriSpec":"..",
//        "serviceType":"DYNAMIC"}}            -> {"ok":true,"op":"register","id":..}
//   {"op":"unregister","id":..}             -> {"ok":true,"op":"unregister","id":..}
//   {"op":"query","name":..}                -> {"ok":true,"op":"query","instances":[..]}
//   {"op":"names"}                          -> {"ok":true,"op":"names","names":[..]}
//   {"op":"quit"}                           -> {"ok":true,"op":"quit"}, then exit 0
// A failed command answers {"ok":false,"op":..,"error":"<exception>"}.
// EOF on stdin is "quit". The process may be SIGKILLed at any time (that is
// the session-expiry test).

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceInstanceBuilder;
import org.apache.curator.x.discovery.ServiceType;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;

public final class CuratorPeer {
    private static final ObjectMapper JSON = new ObjectMapper();

    @SuppressWarnings("rawtypes")
    private static ServiceDiscovery<Map> discovery;

    @SuppressWarnings("rawtypes")
    private static final Map<String, ServiceInstance<Map>> registered = new HashMap<>();

    private static void reply(ObjectNode o) {
        System.out.println(o.toString());
        System.out.flush();
    }

    private static ObjectNode ok(String op) {
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", true);
        o.put("op", op);
        return o;
    }

    private static void usage(String why) {
        System.err.println("CuratorPeer: " + why);
        System.err.println("usage: CuratorPeer --connect HOST:PORT [--base PATH] [--session-ms N] [--compat]");
        System.exit(2);
    }

    @SuppressWarnings({"rawtypes", "unchecked"})
    private static ServiceInstance<Map> build(JsonNode in) throws Exception {
        ServiceInstanceBuilder<Map> b = ServiceInstance.<Map>builder();
        if (!in.hasNonNull("name")) {
            throw new IllegalArgumentException("instance.name is required");
        }
        b.name(in.get("name").asText());
        if (in.hasNonNull("id")) {
            b.id(in.get("id").asText());
        }
        if (in.hasNonNull("address")) {
            b.address(in.get("address").asText());
        }
        if (in.hasNonNull("port")) {
            b.port(in.get("port").asInt());
        }
        if (in.hasNonNull("sslPort")) {
            b.sslPort(in.get("sslPort").asInt());
        }
        if (in.hasNonNull("payload")) {
            b.payload(JSON.convertValue(in.get("payload"), LinkedHashMap.class));
        }
        if (in.has("enabled")) {
            b.enabled(in.get("enabled").asBoolean());
        }
        if (in.hasNonNull("uriSpec")) {
            b.uriSpec(new UriSpec(in.get("uriSpec").asText()));
        }
        b.serviceType(in.hasNonNull("serviceType") ? ServiceType.valueOf(in.get("serviceType").asText())
                                                    : ServiceType.DYNAMIC);
        return b.build();
    }

    @SuppressWarnings("rawtypes")
    private static void handle(JsonNode cmd) throws Exception {
        String op = cmd.path("op").asText("");
        switch (op) {
        case "register": {
            ServiceInstance<Map> inst = build(cmd.path("instance"));
            discovery.registerService(inst);
            registered.put(inst.getId(), inst);
            reply(ok(op).put("id", inst.getId()));
            break;
        }
        case "unregister": {
            String id = cmd.path("id").asText("");
            ServiceInstance<Map> inst = registered.remove(id);
            if (inst == null) {
                throw new IllegalArgumentException("not registered by this peer: " + id);
            }
            discovery.unregisterService(inst);
            reply(ok(op).put("id", id));
            break;
        }
        case "query": {
            Collection<ServiceInstance<Map>> found = discovery.queryForInstances(cmd.path("name").asText(""));
            ObjectNode o = ok(op);
            ArrayNode arr = o.putArray("instances");
            for (ServiceInstance<Map> i : found) {
                ObjectNode e = arr.addObject();
                e.put("name", i.getName());
                e.put("id", i.getId());
                e.put("address", i.getAddress());
                if (i.getPort() != null) {
                    e.put("port", i.getPort());
                }
                if (i.getSslPort() != null) {
                    e.put("sslPort", i.getSslPort());
                }
                e.set("payload", JSON.valueToTree(i.getPayload()));
                e.put("registrationTimeUTC", i.getRegistrationTimeUTC());
                e.put("serviceType", String.valueOf(i.getServiceType()));
                e.put("enabled", i.isEnabled());
                e.put("uri", i.buildUriSpec());
            }
            reply(o);
            break;
        }
        case "names": {
            ObjectNode o = ok(op);
            ArrayNode arr = o.putArray("names");
            for (String n : discovery.queryForNames()) {
                arr.add(n);
            }
            reply(o);
            break;
        }
        default:
            throw new IllegalArgumentException("unknown op '" + op + "'");
        }
    }

    @SuppressWarnings({"rawtypes", "unchecked"})
    public static void main(String[] args) throws Exception {
        String connect = null;
        String base = "/services";
        int sessionMs = 4000;
        boolean compat = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--compat")) {
                compat = true;
            } else if (i + 1 < args.length && a.equals("--connect")) {
                connect = args[++i];
            } else if (i + 1 < args.length && a.equals("--base")) {
                base = args[++i];
            } else if (i + 1 < args.length && a.equals("--session-ms")) {
                sessionMs = Integer.parseInt(args[++i]);
            } else {
                usage("unknown or incomplete argument '" + a + "'");
            }
        }
        if (connect == null) {
            usage("--connect is required");
        }

        CuratorFramework client = CuratorFrameworkFactory.builder()
                                          .connectString(connect)
                                          .sessionTimeoutMs(sessionMs)
                                          .connectionTimeoutMs(Math.min(sessionMs, 15000))
                                          .retryPolicy(new RetryNTimes(100, 100))
                                          .build();
        client.start();
        if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
            System.err.println("CuratorPeer: no connection to " + connect + " within 30 s");
            System.exit(3);
        }
        JsonInstanceSerializer<Map> ser = compat ? new JsonInstanceSerializer<>(Map.class)
                                                 : new JsonInstanceSerializer<>(Map.class, false);
        discovery = ServiceDiscoveryBuilder.builder(Map.class)
                            .client(client)
                            .basePath(base)
                            .serializer(ser)
                            .watchInstances(true)
                            .build();
        discovery.start();
        ObjectNode ready = ok("ready");
        ready.put("session", Long.toHexString(client.getZookeeperClient().getZooKeeper().getSessionId()));
        reply(ready);

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            String op = "?";
            try {
                JsonNode cmd = JSON.readTree(line);
                op = cmd.path("op").asText("?");
                if (op.equals("quit")) {
                    break;
                }
                handle(cmd);
            } catch (Exception e) {
                ObjectNode o = JSON.createObjectNode();
                o.put("ok", false);
                o.put("op", op);
                o.put("error", e.toString());
                reply(o);
            }
        }
        discovery.close();
        client.close();
        reply(ok("quit"));
        System.exit(0);
    }
}
