// SPDX-License-Identifier: Apache-2.0
#pragma once
// Alert outputs: where AlertRecords (detect/alert.h) go, in which format.
// Several run at once, each configured by one [[outputs]] table:
//
//   [[outputs]]
//   type      = "syslog"          # syslog | json
//   transport = "tcp"             # syslog: unix | udp | tcp | tls
//   address   = "127.0.0.1:6514"  # unix: a socket path (default /dev/log);
//                                 # udp/tcp/tls: host:port, [v6]:port
//   format    = "rfc5424"         # syslog: rfc5424 | rfc5424-json | cef | rfc3164
//   facility  = "local0"          # syslog facility name
//   app_name  = "exfilmon"
//   ca_file   = "/etc/exfilmon/collector-ca.pem"   # tls: CA the collector's certificate must chain
//   to server_name = "collector.example.com"          # tls: name to verify (default: the address's
//   host) cert_file = ""  key_file = ""                  # tls: optional client certificate
//   spool_size = 10000            # alerts held in memory while the collector is down
//   spool_file = ""               # optional: spool to this file too (survives restarts)
//   path      = "-"               # json: "-" for stdout or a file (appended)
//
// Each output runs on its own thread behind a bounded queue, so a slow or
// absent collector never stalls detection. Stream transports (tcp, tls)
// reconnect with exponential backoff and deliver in order once the collector
// is back; only a full spool drops alerts, counted and logged.
//
// Delivery (output.cpp, transport.h). The spool holds up to spool_size
// rendered alerts, oldest first; a new alert that finds it full is dropped
// (the newest goes, as with rsyslog's full queue) and counted, with a warning
// at most once a minute. A datagram or a file line is delivered when the
// kernel takes it. A stream message is delivered when TCP acknowledged its
// bytes (SIOCOUTQ); until then it stays spooled, and a connection that breaks
// first (peer closed or reset, found before every write and every 200 ms when
// idle) has it written again, first, on the next one. So a collector that is
// stopped and restarted loses nothing and gets nothing twice, as long as it
// reads what its kernel acknowledged before it closes (plain syslog has no
// application-level acknowledgement). Connection attempts back off from
// 100 ms doubling to 10 s. With spool_file the spool is also kept on disk
// (spool.h) and read back, in order, by the next output using that file.
// A spool file that cannot be written (disk full, read-only file system, I/O
// error) changes nothing for delivery: alerts are kept and sent from memory
// as without a file; the condition is logged when it starts, when its cause
// changes and when it ends, each failed write counted (spool_write_errors),
// and the whole spool rewritten to the file once it can be (tried after 1 s,
// doubling to 10 s). Meanwhile a restart would find the file as it was when
// writing stopped.
// Each problem is logged when it changes and at most once a minute.
//
// Formats. Common to all: timestamps in UTC; syslog severity critical 2,
// warning 4, info 6 (PRI = facility * 8 + severity); wire strings (SNI,
// entity, top SNI names) made valid UTF-8 (each bad byte becomes U+FFFD) and
// cut, on a character boundary, to 255 bytes (the entity, which can hold an
// address and an SNI, to 320).
//
//   rfc5424  <130>1 2026-11-23T12:00:00.123Z edge-1 exfilmon 4242 OPEN
//            [exfilmon@32473 id="9f3c2a1b7d4e5f60" state="open" rule="..."
//            severity="critical" entity_kind="client" entity="203.0.113.7"
//            client=".." subnet=".." sni=".." cohort=".." metric="bytes_out"
//            window="10m" value="2254857830" threshold="2147483648"
//            baseline=".." bytes_out=".." bytes_in=".." tls_flows=".."
//            peak_concurrent=".." distinct_clients=".."
//            top_sni="api.example.com 2000000000" (repeated; the count
//            follows the last space) top_ja4="t13d... 40" (repeated)
//            first_seen="<RFC 3339>" opened="<RFC 3339>" count="1"
//            suppressed=".." (summary) shadow="true" (shadow rules)]
//            client 203.0.113.7 bytes_out 2.1GiB over 10m >= 2GiB (rule ...)
//            MSGID OPEN | UPDATE | RESOLVED | SUMMARY. Header fields keep
//            printable ASCII only (others become '_'), within RFC 5424's
//            lengths, "-" when empty. PARAM-VALUEs escape '"', '\' and ']'
//            with a backslash; control characters become U+FFFD. Optional
//            parameters appear only when set. Values with decimals keep at
//            most 3. The MSG is printable ASCII: any other byte, and '\',
//            shows as \xNN (so no BOM is needed).
//   rfc5424-json  the same header, SD "-", the MSG is format_json's object.
//   cef      RFC 3164-style header, as ArcSight's syslog connector expects:
//            <130>Nov 23 12:00:00 edge-1 CEF:0|exfilmon|exfilmon|VERSION|
//            <rule>|client bytes_out over threshold|9|rt=<epoch ms>
//            dvchost act=<state> externalId=<id> cat=exfiltration[/shadow]
//            src=<client, a full address> dhost=<sni> in=<bytes_in>
//            out=<bytes_out> cnt=<count> start=<opened ms> cs1=rule
//            cs2=entity cs3=entityKind cs4=metric cs5=window cs6=topSni
//            ("name bytes, ...") cfp1=value cfp2=threshold cfp3=baseline
//            cn1=tlsFlows cn2=peakConcurrent cn3=distinctClients
//            flexNumber1=suppressed deviceCustomDate1=firstSeen
//            flexString1=topJa4 msg=<the sentence>, each csN/cfpN/... with
//            its Label. Severity 0-10: info 3, warning 6, critical 9. Header
//            fields escape '|' and '\'; extension values escape '\' and
//            '=', and newline and CR as \n and \r; other control characters
//            become U+FFFD.
//   rfc3164  <130>Nov 23 12:00:00 edge-1 exfilmon[4242]: id=... state=open
//            ... (the rfc5424 parameters as key=value). ASCII only: other
//            bytes and '\' show as \xNN; values with a space, '=', '"' or
//            an escape are double-quoted with \" inside. The day is
//            space-padded; the whole message is cut to 1024 bytes.
//   json     one line, ASCII (\uXXXX escapes), ECS names where ECS has them:
//            @timestamp, event {kind "alert", category ["network"], type
//            ["info"], action <state>, id, severity (the CEF 0-10 value),
//            dataset "exfilmon.alert", module, start <opened>}, log.level
//            <severity name>, rule.name, host.name, observer {vendor,
//            product, version}, source.ip (a full client address),
//            tls.client.server_name <sni>; the rest under "exfilmon" (see
//            format_json), top_sni [{name, bytes_out}], top_ja4 [{ja4,
//            flows}], and "message", the sentence. Control characters in
//            wire strings are kept, JSON-escaped.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "detect/alert.h"

namespace exf::output {

enum class OutputType : uint8_t { syslog, json };
enum class Transport : uint8_t { unix_socket, udp, tcp, tls };
enum class Format : uint8_t { rfc5424, rfc5424_json, cef, rfc3164, json };

struct OutputConfig {
    OutputType type = OutputType::syslog;
    Transport transport = Transport::unix_socket;
    std::string address = "/dev/log";
    Format format = Format::rfc5424;  // json for type = "json"
    int facility = 16;                // local0
    std::string app_name = "exfilmon";
    std::string ca_file, server_name, cert_file, key_file;
    uint32_t spool_size = 10000;
    std::string spool_file;
    std::string path = "-";  // json
    // Where this table is in the configuration file, for messages ("FILE:LINE").
    std::string origin;
};

// A collector's address: "host:port", "[v6]:port", "host" (the default
// port). Throws exf::Error naming the address: no host, a port outside
// 1..65535, a dotted quad that is no IPv4 address ("256.1.1.1").
struct HostPort {
    std::string host, port;
};
HostPort parse_host_port(const std::string &address, const char *default_port);
// "514" (udp, tcp), "6514" (tls).
const char *default_port(Transport t);

// What would keep the output from working, found before it starts: the
// checks `exfilmon run` and `check-config` make (config/run_checks.h), and
// make_output refuses an output with an error among them. Each names the
// key it is about.
//   errors:   a malformed address, a unix socket path too long; a json path
//             or spool_file whose directory is missing or not writable, or
//             that is a directory; a TLS file that is unreadable or invalid
//   warnings: a collector name that does not resolve now (the output
//             spools and retries, so it may at run time; only with
//             resolve); a spool_file on a read-only file system (kept in
//             memory until it can be written)
struct OutputProblem {
    std::string key;  // "address", "path", "spool_file", "ca_file", ...
    std::string message;
    bool warning = false;
};
std::vector<OutputProblem> check_output(const OutputConfig &cfg, bool resolve = true);

// Facility by name ("kern", "user", ..., "local7"); -1 when unknown.
int facility_from_name(const std::string &name);

// Rendering, one alert to one message, without framing (no trailing newline,
// no octet count). Wire strings are escaped per format and capped in length.
std::string format_rfc5424(const detect::AlertRecord &a, int facility, const std::string &app_name,
                           int procid);
std::string format_rfc5424_json(const detect::AlertRecord &a, int facility,
                                const std::string &app_name, int procid);
std::string format_cef(const detect::AlertRecord &a, int facility, const std::string &app_name,
                       int procid);
std::string format_rfc3164(const detect::AlertRecord &a, int facility, const std::string &app_name,
                           int procid);
// One JSON object (Elastic Common Schema field names where ECS has them).
std::string format_json(const detect::AlertRecord &a);

struct OutputStats {
    uint64_t queued = 0;            // alerts handed to the output
    uint64_t sent = 0;              // written to the transport (acknowledged by TCP for streams)
    uint64_t dropped = 0;           // lost: spool full (or a datagram too big to send)
    uint64_t reconnects = 0;        // connections made after the first
    uint64_t spooled_now = 0;       // waiting in the spool (written but unacknowledged included)
    uint64_t connect_failures = 0;  // connect / open / handshake attempts that failed
    uint64_t write_errors = 0;      // writes that failed (the message stays spooled)
    std::string last_error;         // the latest failure, "" when none yet
    bool connected = false;
    // The spool file (spool_file), "" when none. While it cannot be written
    // (disk full, read-only, I/O error) alerts are kept and delivered from
    // memory: spool_file_ok is false and every failed attempt is counted.
    std::string spool_file;
    bool spool_file_ok = true;
    uint64_t spool_write_errors = 0;
};

class Output {
public:
    virtual ~Output() = default;
    // Never blocks: queues the alert (or counts it dropped when the spool is full).
    virtual void send(const detect::AlertRecord &a) = 0;
    virtual OutputStats stats() const = 0;
    // Waits up to timeout_ms for the queue to drain; true when it did.
    virtual bool flush(uint64_t timeout_ms) = 0;
    virtual std::string describe() const = 0;  // "syslog tcp 127.0.0.1:6514 rfc5424"
    // Starts the delivery thread; alerts sent before wait in the spool.
    virtual void start() = 0;
};

// Opens the output (files, spool file) without starting its thread: the
// daemon opens with its privileges, drops them, then starts the threads.
// Throws exf::Error when the configuration cannot work at all (unreadable CA
// file, bad address); a collector that is down is not an error (the output
// spools and retries).
std::unique_ptr<Output> open_output(const OutputConfig &cfg);

// open_output, then start.
std::unique_ptr<Output> make_output(const OutputConfig &cfg);

}  // namespace exf::output
