#!/usr/bin/env bash
# End-to-end tests of the MTA-STS policy engine through `stsproxy policy`
# and `stsproxy cache`, against real NSD (DNSSEC-signed zone) and nginx
# (HTTPS with certificates made for the run). Each check names the
# requirement of ../shared/docs/spec-notes.md it covers.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd nginx ldns-signzone drill jq openssl python3; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

# ---- build the world ---------------------------------------------------
world_init
world_ca_init "$W/ca" "stsproxy test CA"
world_ca_init "$W/evilca" "untrusted CA"
mkdir -p "$W/certs"
for d in good multi cname chain spf dup notfound redirect html big invalid none slow cache bogus; do
	world_cert "$W/ca" "$W/certs/$d" "mta-sts.$d.$ZONE" "DNS:mta-sts.$d.$ZONE" || exit 1
done
world_cert "$W/ca" "$W/certs/wild" "*.wild.$ZONE" "DNS:*.wild.$ZONE" || exit 1
world_cert "$W/ca" "$W/certs/expired" "mta-sts.expired.$ZONE" "DNS:mta-sts.expired.$ZONE" \
	20200101000000Z 20200201000000Z || exit 1
# Case 34: the certificate names only the bare domain.
world_cert "$W/ca" "$W/certs/wrongname" "wrongname.$ZONE" "DNS:wrongname.$ZONE" || exit 1
world_cert "$W/evilca" "$W/certs/untrusted" "mta-sts.untrusted.$ZONE" "DNS:mta-sts.untrusted.$ZONE" || exit 1
# Case 46: CN only, no SAN.
world_cert "$W/ca" "$W/certs/cnonly" "mta-sts.cnonly.$ZONE" "" || exit 1

: > "$W/nginx.sites"
for d in good multi cname chain spf dup notfound big invalid none cache bogus; do
	world_site "mta-sts.$d.$ZONE" "$W/certs/$d"
done
world_site "mta-sts.wild.$ZONE" "$W/certs/wild"
world_site "mta-sts.redirect.$ZONE" "$W/certs/redirect" "location / { return 301 https://mta-sts.good.$ZONE\$request_uri; }"
world_site "mta-sts.html.$ZONE" "$W/certs/html" "types { text/html txt; }"
for d in expired wrongname untrusted cnonly; do
	world_site "mta-sts.$d.$ZONE" "$W/certs/$d"
done

ENFORCE="version: STSv1
mode: enforce
mx: mx1.good.$ZONE
mx: *.mail.good.$ZONE
max_age: 604800"
for d in good multi cname chain spf dup notfound redirect html expired wrongname untrusted cnonly bogus wild; do
	printf '%s\n' "$ENFORCE" | world_policy "mta-sts.$d.$ZONE"
done
printf 'version: STSv1\r\nmode: testing\r\nmx: mx.big.%s\r\nmax_age: 86400\r\n' "$ZONE" > "$W/big.txt"
head -c 70000 /dev/zero | tr '\0' '#' | sed 's/^/x-pad: /' >> "$W/big.txt"
world_policy "mta-sts.big.$ZONE" < "$W/big.txt"
printf 'version: STSv1\nmode: Enforce\nmx: mx.invalid.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.invalid.$ZONE"
printf 'version: STSv1\nmode: none\nmax_age: 86400\n' | world_policy "mta-sts.none.$ZONE"
: | world_policy "mta-sts.notfound.$ZONE"

world_dns_records <<ZONEDATA
_mta-sts.good TXT "v=STSv1; id=good1;"
mta-sts.good A $WEB_ADDR
_mta-sts.multi TXT "v=STSv1; id=ab" "c12"
mta-sts.multi A $WEB_ADDR
_mta-sts.cname CNAME _mta-sts.provider
_mta-sts.provider TXT "v=STSv1; id=p1"
mta-sts.cname CNAME mta-sts.good
_mta-sts.chain CNAME hop1.chain
hop1.chain CNAME _mta-sts.provider
mta-sts.chain A $WEB_ADDR
_mta-sts.spf TXT "v=spf1 -all"
_mta-sts.spf TXT "v=STSv1; id=s1"
mta-sts.spf A $WEB_ADDR
_mta-sts.dup TXT "v=STSv1; id=a;"
_mta-sts.dup TXT "v=STSv1; id=b;"
mta-sts.dup A $WEB_ADDR
_mta-sts.badid TXT "v=STSv1; id=2019-01-01"
_mta-sts.upper TXT "V=STSv1; id=abc"
_mta-sts.notfound TXT "v=STSv1; id=n1"
mta-sts.notfound A $WEB_ADDR
_mta-sts.redirect TXT "v=STSv1; id=r1"
mta-sts.redirect A $WEB_ADDR
_mta-sts.html TXT "v=STSv1; id=h1"
mta-sts.html A $WEB_ADDR
_mta-sts.big TXT "v=STSv1; id=b1"
mta-sts.big A $WEB_ADDR
_mta-sts.invalid TXT "v=STSv1; id=i1"
mta-sts.invalid A $WEB_ADDR
_mta-sts.none TXT "v=STSv1; id=none1"
mta-sts.none A $WEB_ADDR
_mta-sts.expired TXT "v=STSv1; id=e1"
mta-sts.expired A $WEB_ADDR
_mta-sts.wrongname TXT "v=STSv1; id=w1"
mta-sts.wrongname A $WEB_ADDR
_mta-sts.untrusted TXT "v=STSv1; id=u1"
mta-sts.untrusted A $WEB_ADDR
_mta-sts.cnonly TXT "v=STSv1; id=cn1"
mta-sts.cnonly A $WEB_ADDR
_mta-sts.wild TXT "v=STSv1; id=wild1"
mta-sts.wild A $WEB_ADDR
_mta-sts.slow TXT "v=STSv1; id=t1"
mta-sts.slow A $STALL_ADDR
_mta-sts.refused TXT "v=STSv1; id=x1"
mta-sts.refused A $DEAD_ADDR
_mta-sts.noaddr TXT "v=STSv1; id=na1"
_mta-sts.bogus TXT "v=STSv1; id=bogus1"
mta-sts.bogus A $WEB_ADDR
_mta-sts.cache TXT "v=STSv1; id=c1"
mta-sts.cache A $WEB_ADDR
ZONEDATA
# Sign, then change the record under its signature: a DNSSEC-bogus answer.
echo 's/"v=STSv1; id=bogus1"/"v=STSv1; id=bogus2"/' > "$W/dns/tamper.sed"

# Hosts for the dynamic cache scenario.
world_site "mta-sts.cache.$ZONE" "$W/certs/cache"
printf 'version: STSv1\nmode: testing\nmx: mx.cache.%s\nmax_age: 604800\n' "$ZONE" | world_policy "mta-sts.cache.$ZONE"

world_dns_publish >/dev/null || exit 1
world_web_start || exit 1
world_stall_start
world_conf
sleep 0.3

# ---- TXT discovery ------------------------------------------------------
out=$(sts policy "good.$ZONE" --json); rc=$?
check "STS-1/STS-12 valid TXT and HTTPS fetch give the policy (exit 0)" "$rc" 0
check "STS-12 policy fetched fresh" "$(jq -r .verdict.source <<<"$out")" fresh
check "STS-26 mode enforce" "$(jq -r .verdict.mode <<<"$out")" enforce
check "STS-1 id from TXT" "$(jq -r .verdict.id <<<"$out")" good1
check "STS-28 mx patterns" "$(jq -c .policy.mx <<<"$out")" "[\"mx1.good.$ZONE\",\"*.mail.good.$ZONE\"]"
check "DNSSEC state of the TXT answer is secure" "$(jq -r .txt.dnssec <<<"$out")" secure
check "STS-13 fetched over TLS from the policy host" "$(jq -r .fetch.tls.subject <<<"$out")" "/CN=mta-sts.good.$ZONE"
check "fetch shows HTTP status and content type" "$(jq -r '.fetch.http_status,.fetch.content_type' <<<"$out" | tr '\n' ' ')" "200 text/plain "
check "policy text lines kept for TLS-RPT" "$(jq -r '.policy.lines | length' <<<"$out")" 5

check "STS-6 case 11: multi-string TXT joined" "$(stsq "multi.$ZONE" .verdict.id)" abc12
check "STS-8 case 14: _mta-sts CNAME to a provider" "$(stsq "cname.$ZONE" .verdict.id)" p1
check "STS-8: the CNAME target is shown" "$(stsq "cname.$ZONE" .txt.canonical_name --no-cache)" "_mta-sts.provider.$ZONE."
check "STS-8: CNAME chain of two hops" "$(stsq "chain.$ZONE" .verdict.id)" p1
check "STS-7 case 12: non-STS TXT records are ignored" "$(stsq "spf.$ZONE" .verdict.id)" s1
out=$(sts policy "dup.$ZONE" --json); rc=$?
check "STS-7 case 13: two STS records mean no policy" "$(jq -r .txt.record_status <<<"$out")" multiple
check "STS-7 case 13: exit status 1 (no policy)" "$rc" 1
check "STS-7: no fetch for a duplicated record" "$(world_fetches "mta-sts.dup.$ZONE")" 0
check "STS-3 case 7: '-' in id is invalid" "$(stsq "badid.$ZONE" .txt.record_status)" invalid
check "STS-3 case 8: V=STSv1 is not a record (case-sensitive)" "$(stsq "upper.$ZONE" .txt.record_status)" absent
check "SMTP-1 NXDOMAIN: no policy" "$(stsq "nosuchname.$ZONE" '.txt.status + " " + .verdict.mode')" "nxdomain no-policy"
sts policy "nosuchname.$ZONE" >/dev/null
check "NXDOMAIN is a definite answer: exit 1 (no policy)" "$?" "1"
out=$(sts policy "elsewhere.example" --json); rc=$?
check "STS-10 SERVFAIL is reported as such" "$(jq -r .txt.status <<<"$out")" servfail
check "a failed TXT lookup is not 'no policy': exit 2, with the reason (issue 11 §5)" \
	"$rc $(jq -r .verdict.lookup_failed <<<"$out") $(cat "$W/last.err" | grep -c 'lookup failed: the TXT lookup of _mta-sts.elsewhere.example failed (servfail)')" \
	"2 the TXT lookup of _mta-sts.elsewhere.example failed (servfail) 1"
check "STS-10 SERVFAIL with no cache: deliver without MTA-STS, and say so" \
	"$(jq -r .verdict.mode <<<"$out")" no-policy
check "STS-10 the verdict says the rule in words, without an opaque STS-n tag (issue 11 §7)" "$(jq -r .verdict.note <<<"$out")" \
	"TXT lookup failed: servfail: a failed TXT lookup counts as no live policy, so only a cached one can apply; no policy is cached: no policy applies"
out=$(sts policy "bogus.$ZONE" --json)
check "DANE-1 bogus DNSSEC answer is never used" "$(jq -r '.txt.status + " " + .txt.dnssec' <<<"$out")" "bogus bogus"
check "DANE-1 bogus TXT: no fetch" "$(world_fetches "mta-sts.bogus.$ZONE")" 0
check "STS-2 address literal has no policy" "$(stsq "[127.0.0.1]" .verdict.mode)" no-policy

# ---- fetch rules --------------------------------------------------------
q='.failure.result_type + " | " + .failure.reason + " | " + .verdict.mode'
check_match "STS-15 HTTP 404 is a fetch error" "$(stsq "notfound.$ZONE" "$q")" "^sts-policy-fetch-error \| .*HTTP 404 \| no-policy$"
check_match "STS-15 case 32: 301 is not followed" "$(stsq "redirect.$ZONE" "$q")" "^sts-policy-fetch-error \| HTTP 301 redirect .*not followed.* \| no-policy$"
check_match "STS-16 case 33: text/html is rejected" "$(stsq "html.$ZONE" "$q")" "^sts-policy-invalid \| Content-Type text/html .* \| no-policy$"
check_match "STS-17 oversize body is rejected" "$(stsq "big.$ZONE" "$q")" "^sts-policy-invalid \| .*larger than the limit of 65536.* \| no-policy$"
check_match "STS-14 expired certificate" "$(stsq "expired.$ZONE" "$q")" "^sts-webpki-invalid \| .*certificate has expired \| no-policy$"
check_match "STS-14 case 34: certificate for the bare domain" "$(stsq "wrongname.$ZONE" "$q")" "^sts-webpki-invalid \| .*[Hh]ostname mismatch \| no-policy$"
check_match "STS-14 untrusted CA" "$(stsq "untrusted.$ZONE" "$q")" "^sts-webpki-invalid \| .*(unable to get local issuer|self.signed).* \| no-policy$"
check_match "STS-38 case 46: CN without SAN is not accepted" "$(stsq "cnonly.$ZONE" "$q")" "^sts-webpki-invalid \| .*[Hh]ostname mismatch \| no-policy$"
check "STS-14 '*' as the whole left-most label is accepted" "$(stsq "wild.$ZONE" .verdict.mode)" enforce
start=$(date +%s)
check_match "STS-17 a server that never answers times out" "$(stsq "slow.$ZONE" "$q")" "^sts-policy-fetch-error \| .*(within 2s|timed out).* \| no-policy$"
check "STS-17 the timeout is the configured 2s, not more" "$(( $(date +%s) - start <= 4 ))" 1
check_match "STS-19 connection refused is a fetch error" "$(stsq "refused.$ZONE" "$q")" "^sts-policy-fetch-error \| .*$DEAD_ADDR.* \| no-policy$"
sts policy "refused.$ZONE" --no-cache >/dev/null
check "a policy host that does not answer, nothing cached: the lookup failed, exit 2" "$?" "2"
sts policy "expired.$ZONE" --no-cache >/dev/null
check "a policy host with an expired certificate is a definite answer: exit 1" "$?" "1"
check_match "STS-19 policy host without address" "$(stsq "noaddr.$ZONE" "$q")" "^sts-policy-fetch-error \| .*(nxdomain|no A or AAAA).* \| no-policy$"
out=$(sts policy "invalid.$ZONE" --json)
check_match "STS-24 case 23: mode Enforce makes the policy invalid" "$(jq -r "$q" <<<"$out")" "^sts-policy-invalid \| invalid policy: line 2: mode: 'Enforce'.* \| no-policy$"
check "STS-30 parse errors are listed with their line" "$(jq -r '.diagnostics[] | select(.severity=="error") | .line' <<<"$out")" 2
out=$(sts policy "none.$ZONE" --json); rc=$?
check "STS-35 mode none: no active policy (exit 1)" "$rc" 1
check "STS-35 mode none is fetched and held" "$(jq -r '.verdict.source + " " + .policy.mode' <<<"$out")" "fresh none"

# ---- cache rules (dynamic zone and web content, injectable clock) --------
H="mta-sts.cache.$ZONE"
set_cache_txt() { # ID or "" for no record
	grep -v '^_mta-sts.cache ' "$W/dns/records" > "$W/dns/records.new"
	[ -n "$1" ] && printf '_mta-sts.cache TXT "v=STSv1; id=%s"\n' "$1" >> "$W/dns/records.new"
	mv "$W/dns/records.new" "$W/dns/records"
	world_dns_publish >/dev/null
}
at() { STSPROXY_TEST_TIME_OFFSET=$1; export STSPROXY_TEST_TIME_OFFSET; }
cq='.verdict.source + " " + (.verdict.id // "-") + " " + .verdict.mode'

at 0
check "STS-31 first lookup fetches and caches" "$(stsq "cache.$ZONE" "$cq")" "fresh c1 testing"
check "STS-20 case 35: same id, cached, no new fetch" "$(stsq "cache.$ZONE" "$cq") $(world_fetches "$H")" "cache c1 testing 1"
printf 'version: STSv1\nmode: enforce\nmx: mx.cache.%s\nmax_age: 604800\n' "$ZONE" | world_policy "$H"
set_cache_txt c2
check "STS-20 new id triggers a fetch that replaces the cache" "$(stsq "cache.$ZONE" "$cq")" "fresh c2 enforce"
check_match "STS-34 a policy change is logged at notice" "$(cat "$W/last.err")" "level=notice event=policy_changed domain=cache.$ZONE id=c2 mode=enforce .*old_id=c1 old_mode=testing"
set_cache_txt ""
check "STS-32 TXT gone: the unexpired cached policy stays" "$(stsq "cache.$ZONE" "$cq")" "cache c2 enforce"
: | world_policy "$H"
set_cache_txt c3
n0=$(world_fetches "$H")
out=$(sts policy "cache.$ZONE" --json)
check "STS-19 case 36: new id, fetch fails, old policy kept" "$(jq -r "$cq" <<<"$out")" "cache c2 enforce"
check "STS-21 the failure is a fetch error, reportable" "$(jq -r '.failure.result_type + " " + (.failure.reportable|tostring)' <<<"$out")" "sts-policy-fetch-error true"
check_match "STS-34 fetch failure logged as a warning" "$(cat "$W/last.err")" "level=warning event=policy_fetch_failed domain=cache.$ZONE id=c3 result=sts-policy-fetch-error"
out=$(sts policy "cache.$ZONE" --json)
check "STS-18 within 5 minutes: no new fetch for the same id" "$(( $(world_fetches "$H") - n0 ))" 1
check "STS-18 the back-off is shown" "$(jq -r .failure.backoff <<<"$out")" true
at 301
sts policy "cache.$ZONE" --json >/dev/null
check "STS-18 after 5 minutes the fetch is tried again" "$(( $(world_fetches "$H") - n0 ))" 2
at 90000
n1=$(world_fetches "$H")
sts cache refresh >/dev/null
check "STS-33 refresh after refresh_interval fetches whatever the TXT says" "$(( $(world_fetches "$H") - n1 ))" 1
check "STS-33 a failed refresh keeps the cached policy" "$(stsq "cache.$ZONE" "$cq")" "cache c2 enforce"
sts cache refresh >/dev/null
check_match "STS-34 refresh failure is logged" "$(STSPROXY_TEST_TIME_OFFSET=90400 sts cache refresh; cat "$W/last.err")" "level=warning event=policy_fetch_failed domain=cache.$ZONE .*refresh=yes"
printf 'version: STSv1\nmode: enforce\nmx: mx.cache.%s\nmx: mx2.cache.%s\nmax_age: 604800\n' "$ZONE" "$ZONE" | world_policy "$H"
at 91000
sts cache refresh >/dev/null
out=$(sts policy "cache.$ZONE" --json)
check "STS-33 a successful refresh restarts the max_age clock" \
	"$(jq -r '.policy.mx | length' <<<"$out") $(jq -r .verdict.source <<<"$out")" "2 cache"
set_cache_txt ""
at $((91000 + 604801))
check "STS-31 an expired policy no longer applies" "$(stsq "cache.$ZONE" "$cq")" "none - no-policy"
printf 'version: STSv1\nmode: none\nmax_age: 86400\n' | world_policy "$H"
set_cache_txt c4
check "STS-35 a fetched none replaces the policy" "$(stsq "cache.$ZONE" '.verdict.source + " " + .policy.mode')" "fresh none"
: | world_policy "$H"
set_cache_txt c5
out=$(sts policy "cache.$ZONE" --json)
check "STS-35 failures under a held none are not reported" "$(jq -r .failure.reportable <<<"$out")" false
check "STS-34 ...nor alerted (no warning logged)" "$(grep -c 'level=warning' "$W/last.err")" 0
at 0

# ---- cache commands -----------------------------------------------------
check_match "cache list shows domains" "$(sts cache list)" "good\.$ZONE +good1 +enforce +live"
check_match "cache show prints the policy text" "$(sts cache show "good.$ZONE")" "mx: \*\.mail\.good\.$ZONE"
check "cache purge DOMAIN" "$(sts cache purge "good.$ZONE")" "purged good.$ZONE"
sts cache show "good.$ZONE" >/dev/null; check "a purged domain is gone" "$?" 1
check "--no-cache does not write the cache" "$(sts policy "good.$ZONE" --no-cache >/dev/null; sts cache show "good.$ZONE" >/dev/null; echo $?)" 1
check_match "cache purge --all" "$(sts cache purge --all)" "^purged [0-9]+ entries$"

# ---- cache robustness ---------------------------------------------------
sts policy "good.$ZONE" >/dev/null
head -c 65536 /dev/urandom > "$W/state/policy.mdb"
out=$(sts policy "good.$ZONE" --json)
check "a corrupt cache file is rebuilt; mail flow unaffected" "$(jq -r .verdict.mode <<<"$out")" enforce
check_match "the corruption is logged with the file moved aside" "$(cat "$W/last.err")" "event=cache_corrupt .*moved_to="
check "the rebuilt cache works" "$(stsq "good.$ZONE" .verdict.source)" cache
# LMDB shares the cache between processes: four lookups at once.
sts cache purge --all >/dev/null
lookups=()
for d in good multi spf wild; do sts policy "$d.$ZONE" >/dev/null 2>&1 & lookups+=($!); done
wait "${lookups[@]}"
check "the cache is shared by concurrent processes" "$(sts cache list | grep -c ' live ')" 4
# A process killed in the middle of a lookup leaves a usable cache.
sts policy "slow.$ZONE" >/dev/null 2>&1 & victim=$!
sleep 0.5; kill -9 "$victim"; wait "$victim" 2>/dev/null
check "after kill -9 mid-lookup the cache is intact" "$(sts cache list | grep -c ' live ')" 4
check "...and keeps working" "$(stsq "good.$ZONE" .verdict.source)" cache
rm -rf "$W/state"; : > "$W/state"
out=$(sts policy "good.$ZONE" --json)
check "an unusable state_dir disables the cache, never fatal" "$(jq -r '.verdict.mode + " " + (.cache.enabled|tostring)' <<<"$out")" "enforce false"
check_match "the disabled cache is logged" "$(cat "$W/last.err")" "event=cache_disabled"
rm -f "$W/state"; mkdir -p "$W/state"

# ---- override -----------------------------------------------------------
world_conf "override = good.$ZONE:testing"
out=$(sts policy "good.$ZONE" --json)
check "[policy] override forces the mode" "$(jq -r '.verdict.mode + " " + .verdict.override + " " + .policy.mode' <<<"$out")" "testing testing enforce"
world_conf

world_summary
