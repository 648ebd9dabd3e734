// SPDX-License-Identifier: Apache-2.0
// The lab's real servers prove themselves (support/servers.h):
//  - nginx in a server namespace, curl clients from three IPv4 addresses and
//    one IPv6 address of a client namespace, sequential and parallel
//    transfers, a second TLS port and a PUT upload: nginx's access log (the
//    server-side truth) equals what curl reported, per client and per
//    connection, byte for byte.
//  - rsyslogd on loopback TCP in the test's own namespace: octet-counted
//    RFC 5424 messages (our client and util-linux logger) arrive raw; after a
//    stop the port refuses, after a new start on the same port the file
//    keeps the old messages and gains the new ones.
//  - rsyslogd in a lab namespace with a TLS listener (certificate made at
//    test time) next to the plain one.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <map>
#include <set>

#include "support/netns.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;
using namespace std::chrono_literals;

namespace {

// Curl's view of one client address: what nginx should have logged.
struct CurlTotals {
    uint64_t requests = 0, body = 0, response = 0, request = 0;
    std::set<uint16_t> ports;
};

}  // namespace

TEST_CASE("nginx in a lab namespace logs per-client truth equal to curl", "[e2e][lab]")
{
    if (!require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    lab.add_addr(srv, veth.a, "198.51.100.1/24");
    lab.add_addr(srv, veth.a, "2001:db8:51::1/64");
    const std::vector<std::string> v4_clients = {"198.51.100.10", "198.51.100.11", "198.51.100.12"};
    const std::string v6_client = "2001:db8:51::10";
    for (auto &c : v4_clients)
        lab.add_addr(cli, veth.b, c + "/24");
    lab.add_addr(cli, veth.b, v6_client + "/64");

    NginxOptions opts;
    opts.ports = {443, 8443};
    opts.downloads = {{"5m", 5u << 20}, {"300k", 300000}};
    NginxServer nginx(lab, srv, opts);
    REQUIRE(nginx.running());
    REQUIRE(nginx.items_size() >= 1000);
    REQUIRE(nginx.items_size() <= 2500);

    const std::string api = "api.example.com", dl = "downloads.example.com";
    auto upload = lab.dir() / "upload.bin";
    {
        std::ofstream f(upload, std::ios::binary);
        for (int i = 0; i < 256 * 1024; i++)
            f.put(char(i * 131 + i / 977));
    }
    auto job = [&](const std::string &src, std::vector<std::string> urls, int parallel = 1) {
        CurlJob j;
        j.ns = cli;
        j.source = src;
        j.server = src.find(':') == std::string::npos ? "198.51.100.1" : "2001:db8:51::1";
        j.ca_cert = nginx.ca_cert();
        j.urls = std::move(urls);
        j.parallel = parallel;
        return j;
    };
    std::vector<CurlJob> jobs;
    // Every IPv4 client: the JSON endpoint and a 5 MB download, one by one.
    for (auto &c : v4_clients)
        jobs.push_back(
            job(c, {NginxServer::url(api, "/v1/items"), NginxServer::url(dl, "/download/5m")}));
    // The first also in parallel: 3 downloads and 2 API calls at once.
    jobs.push_back(job(v4_clients[0],
                       {NginxServer::url(dl, "/download/5m"), NginxServer::url(api, "/v1/items"),
                        NginxServer::url(dl, "/download/5m"), NginxServer::url(api, "/v1/items"),
                        NginxServer::url(dl, "/download/300k")},
                       4));
    // The second on the other TLS port.
    jobs.push_back(job(v4_clients[1], {NginxServer::url(api, "/v1/status", 8443),
                                       NginxServer::url(dl, "/download/300k", 8443)}));
    // The third uploads (PUT) 256 KiB.
    auto up = job(v4_clients[2], {NginxServer::url(api, "/upload/c3/blob.bin")});
    up.upload = upload;
    jobs.push_back(up);
    // IPv6: [::]:443 listens too.
    jobs.push_back(job(v6_client, {NginxServer::url(api, "/v1/items")}));

    auto results = run_curls(lab, jobs, 240s);
    REQUIRE(results.size() == jobs.size());
    size_t transfers = 0;
    std::map<std::string, CurlTotals> curl_truth;
    for (size_t i = 0; i < results.size(); i++) {
        auto &r = results[i];
        INFO("curl job " << i << " output:\n" << r.output);
        REQUIRE(r.ok());
        for (auto &t : r.transfers) {
            INFO(t.url);
            CHECK(t.local_ip == jobs[i].source);
            if (t.url.find("/v1/items") != std::string::npos)
                CHECK(t.size_download == nginx.items_size());
            else if (t.url.find("/v1/status") != std::string::npos)
                CHECK(t.size_download == NginxServer::kStatusJson.size());
            else if (t.url.find("/download/") != std::string::npos)
                CHECK(t.size_download == nginx.download_size(t.url.substr(t.url.rfind('/') + 1)));
            auto &ct = curl_truth[jobs[i].source];
            ct.requests++;
            ct.body += t.size_download;
            ct.response += t.size_header + t.size_download;
            ct.request += t.size_request + t.size_upload;
            ct.ports.insert(t.local_port);
            transfers++;
        }
    }
    CHECK(results[jobs.size() - 2].upload_bytes() == 256 * 1024);
    CHECK(std::filesystem::file_size(nginx.uploads_dir() / "upload/c3/blob.bin") == 256 * 1024);
    // The first client fetched 5 MB three times.
    CHECK(curl_truth[v4_clients[0]].body >= 3 * (5u << 20));

    // nginx logs a request once its last byte is out: wait for all of them.
    REQUIRE(nginx.wait_for_requests(transfers, 30s));
    auto records = nginx.access_log();
    REQUIRE(records.size() == transfers);
    auto server_truth = totals_by_client(records);
    // The upload: nginx counts its interim 100 Continue into $body_bytes_sent.
    const std::string continue100 = "HTTP/1.1 100 Continue\r\n\r\n";
    for (auto &r : records)
        if (r.method == "PUT") {
            CHECK(r.status == 201);
            CHECK(r.body_bytes_sent == continue100.size());
            server_truth[r.client].body_bytes_sent -= continue100.size();
        }
    REQUIRE(server_truth.size() == curl_truth.size());
    for (auto &[client, ct] : curl_truth) {
        INFO("client " << client);
        REQUIRE(server_truth.count(client) == 1);
        auto &st = server_truth[client];
        CHECK(st.requests == ct.requests);
        // Bodies: $body_bytes_sent == size_download. Whole responses:
        // $bytes_sent (headers + body) == size_header + size_download.
        CHECK(st.body_bytes_sent == ct.body);
        CHECK(st.bytes_sent == ct.response);
        // Requests: $request_length == size_request + size_upload.
        CHECK(st.request_length == ct.request);
        // One client port per connection, the same on both sides.
        CHECK(st.client_ports == ct.ports);
    }
    // SNI is per host name; the server saw both, on both ports.
    std::set<std::string> snis;
    std::set<uint16_t> server_ports;
    for (auto &r : records) {
        snis.insert(r.sni);
        server_ports.insert(r.server_port);
        CHECK((r.tls_protocol == "TLSv1.3" || r.tls_protocol == "TLSv1.2"));
        CHECK(r.pid == nginx.process().pid());
    }
    CHECK(snis == std::set<std::string>{api, dl});
    CHECK(server_ports == std::set<uint16_t>{443, 8443});
    CHECK(server_truth[v6_client].snis == std::set<std::string>{api});

    CHECK(nginx.stop() == 0);
    CHECK_FALSE(nginx.running());
}

TEST_CASE("rsyslog on loopback TCP keeps every message across a restart", "[e2e][lab]")
{
    if (!require_root())
        return;
    Lab lab;
    RsyslogServer rs(lab, {});  // the test's own namespace, 127.0.0.1, a free port
    REQUIRE(rs.port() != 0);
    rs.start();
    REQUIRE(rs.running());
    REQUIRE(tcp_connects("", "127.0.0.1", rs.port()));

    std::vector<std::string> sent = {
        rfc5424("first message", "exftest", "M1"),
        rfc5424("second message with [brackets] and \"quotes\"", "exftest", "M2", 4, 3),
        rfc5424("third message", "exftest", "M3", 1, 6, "exf-lab",
                "[exf@32473 client=\"198.51.100.10\" bytes=\"5242880\"]"),
    };
    send_syslog_tcp("", "127.0.0.1", rs.port(), sent);
    REQUIRE(rs.wait_for_count(3, 20s));
    CHECK(rs.messages() == sent);

    // util-linux logger: octet counting over TCP, RFC 5424.
    lab.run_ok("", {"logger", "--tcp", "--octet-count", "--rfc5424", "-n", "127.0.0.1", "-P",
                    std::to_string(rs.port()), "-t", "exf-logger", "logger message"});
    REQUIRE(rs.wait_for_count(4, 20s));
    auto after_logger = rs.messages();
    CHECK(after_logger.back().find("exf-logger") != std::string::npos);
    CHECK(after_logger.back().find("logger message") != std::string::npos);
    CHECK(after_logger.back().rfind("<13>1 ", 0) == 0);  // user.notice, version 1

    CHECK(rs.stop() == 0);
    CHECK_FALSE(rs.running());
    CHECK_FALSE(tcp_connects("", "127.0.0.1", rs.port()));
    CHECK_THROWS(send_syslog_tcp("", "127.0.0.1", rs.port(), {rfc5424("lost")}));

    rs.start();  // same port, same file: appends
    REQUIRE(tcp_connects("", "127.0.0.1", rs.port()));
    std::vector<std::string> more = {rfc5424("after restart one", "exftest", "M5"),
                                     rfc5424("after restart two", "exftest", "M6")};
    send_syslog_tcp("", "127.0.0.1", rs.port(), more);
    // LF framing works too.
    send_syslog_tcp("", "127.0.0.1", rs.port(), {rfc5424("lf framed", "exftest", "M7")}, false);
    REQUIRE(rs.wait_for_count(7, 20s));
    auto all = rs.messages();
    REQUIRE(all.size() == 7);
    CHECK(std::vector<std::string>(all.begin(), all.begin() + 3) == sent);
    CHECK(all[4] == more[0]);
    CHECK(all[5] == more[1]);
    CHECK(all[6].find("lf framed") != std::string::npos);
    CHECK(std::find(all.begin(), all.end(), rfc5424("lost")) == all.end());
    CHECK(rs.stop() == 0);
}

TEST_CASE("rsyslog in a lab namespace accepts plain and TLS syslog", "[e2e][lab]")
{
    if (!require_root())
        return;
    Lab lab;
    auto logns = lab.add_netns("log");
    RsyslogOptions o;
    o.ns = logns;
    o.port = 514;  // a fresh namespace: any port is free
    o.tls = true;
    o.tls_port = 6514;
    RsyslogServer rs(lab, o);
    rs.start();
    // Listening on the namespace's own loopback.
    REQUIRE(tcp_connects(logns, "127.0.0.1", 514));
    REQUIRE(tcp_connects(logns, "127.0.0.1", 6514));

    auto plain = rfc5424("plain in namespace", "exftest", "P1");
    send_syslog_tcp(logns, "127.0.0.1", 514, {plain});
    REQUIRE(rs.wait_for_count(1, 20s));
    std::vector<std::string> tls_msgs = {rfc5424("over tls one", "exftest", "T1"),
                                         rfc5424("over tls two", "exftest", "T2")};
    send_syslog_tls(lab, logns, "127.0.0.1", 6514, rs.ca_cert(), tls_msgs);
    REQUIRE(rs.wait_for_count(3, 20s));
    auto m = rs.messages();
    CHECK(m == std::vector<std::string>{plain, tls_msgs[0], tls_msgs[1]});

    // A client that does not trust the certificate fails the handshake.
    auto other = make_test_pki(lab, lab.dir() / "other-pki", {"other.example.com"});
    CHECK_THROWS(
        send_syslog_tls(lab, logns, "127.0.0.1", 6514, other.ca_cert, {rfc5424("untrusted")}));
    CHECK(rs.stop() == 0);
    CHECK(rs.messages().size() == 3);
}

TEST_CASE("nginx with a master and two workers serves HTTP/2 and dies with the lab", "[e2e][lab]")
{
    if (!require_root())
        return;
    pid_t master = 0;
    std::set<pid_t> workers;
    {
        Lab lab;
        auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
        auto veth = lab.add_veth(srv, cli);
        lab.add_addr(srv, veth.a, "203.0.113.1/24");
        lab.add_addr(cli, veth.b, "203.0.113.20/24");
        NginxOptions opts;
        opts.workers = 2;
        opts.http2 = true;
        opts.ipv6 = false;
        opts.downloads = {{"1m", 1u << 20}};
        NginxServer nginx(lab, srv, opts);
        master = nginx.process().pid();

        CurlJob j;
        j.ns = cli;
        j.source = "203.0.113.20";
        j.server = "203.0.113.1";
        j.ca_cert = nginx.ca_cert();
        j.http2 = true;
        j.parallel = 4;
        for (int i = 0; i < 4; i++)
            j.urls.push_back(NginxServer::url("downloads.example.com", "/download/1m"));
        auto r = run_curl(lab, j, 120s);
        INFO(r.output);
        REQUIRE(r.ok());
        CHECK(r.body_bytes() == 4u << 20);
        REQUIRE(nginx.wait_for_requests(4, 30s));
        auto records = nginx.access_log();
        REQUIRE(records.size() == 4);
        for (auto &rec : records) {
            CHECK(rec.pid != master);  // a worker served it
            CHECK(rec.body_bytes_sent == 1u << 20);
            CHECK(rec.sni == "downloads.example.com");
        }
        CHECK(totals_by_client(records)["203.0.113.20"].body_bytes_sent == 4u << 20);
        for (auto &rec : records)
            workers.insert(rec.pid);
        // No stop(): the destructors (server, then Lab) must end everything.
    }
    for (pid_t p : workers)
        CHECK((kill(p, 0) != 0 && errno == ESRCH));
    CHECK((kill(master, 0) != 0 && errno == ESRCH));
}
