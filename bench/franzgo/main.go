// Command keel-bench-franz produces or consumes RECORDS records of SIZE bytes through one
// Kafka broker with franz-go (github.com/twmb/franz-go), the Go client, for
// `scripts/bench-kafka sasl-ssl`: a second client next to kcat whose own TLS is not the
// bottleneck. kcat's OpenSSL side spends several times the server's CPU per record under
// SASL_SSL, so on 2 shared cores the client, not the broker, set the ratio; Go's crypto/tls runs
// AES-GCM in assembly and franz-go copies little, so the server's share of TLS shows.
//
// One phase per process, so the script can take each phase's client CPU with GNU time and the
// server's from /proc:
//
//	keel-bench-franz produce -bootstrap B -topic T -records N -size S [-rate R] [-ca cert.pem -user U -password P]
//	keel-bench-franz consume -bootstrap B -topic T -records N [-ca ... -user ... -password ...]
//
// With -ca, the connection is TLS (the broker's certificate checked against that file) with
// SASL/SCRAM-SHA-512 as -user/-password: the bench's SASL_SSL. It prints one JSON object:
// records/s over the phase (produce: until every record is acknowledged; consume: from the
// client's start until the last record; for consume also the time to the first records and the
// rate after them, the connections' setup left out), and for produce the percentiles of each record's
// send-to-acknowledgement time (at full speed that is mostly the producer's queue, as
// Kafka's ProducerPerformance reports it; with -rate, a latency).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// phaseTimeout bounds a phase: a broker that stops answering fails the run instead of hanging it.
const phaseTimeout = 5 * time.Minute

type result struct {
	Phase       string  `json:"phase"`
	Records     int     `json:"records"`
	Seconds     float64 `json:"seconds"`
	RecordsPerS float64 `json:"records_per_s"`
	P50Ms       float64 `json:"p50_ms,omitempty"`
	P99Ms       float64 `json:"p99_ms,omitempty"`
	// FirstRecordsMs (consume) is how long the first records took to arrive: the connections'
	// setup (TCP, the TLS handshake, SASL with SCRAM's 4096 PBKDF2 iterations on the client),
	// the metadata and offset requests and the first Fetch.
	FirstRecordsMs float64 `json:"first_records_ms,omitempty"`
	// FetchRecordsPerS (consume) is the rate after the first records, once connected: what
	// Kafka's ConsumerPerformance reports as fetch.nMsg.sec (its group join left out).
	FetchRecordsPerS float64 `json:"fetch_records_per_s,omitempty"`
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "produce" && os.Args[1] != "consume") {
		fail(fmt.Errorf("usage: keel-bench-franz produce|consume -bootstrap B -topic T -records N [-size S] [-ca F -user U -password P]"))
	}
	phase := os.Args[1]
	flags := flag.NewFlagSet(phase, flag.ExitOnError)
	bootstrap := flags.String("bootstrap", "127.0.0.1:9092", "the broker's host:port")
	topic := flags.String("topic", "bench", "the topic to produce to or consume")
	records := flags.Int("records", 100000, "how many records")
	size := flags.Int("size", 1024, "bytes per record (produce)")
	rate := flags.Int("rate", 0, "records per second to produce at (0: as fast as acknowledged)")
	ca := flags.String("ca", "", "PEM certificate the broker's must chain to; set, the connection is SASL_SSL")
	user := flags.String("user", "", "SCRAM-SHA-512 user (with -ca)")
	password := flags.String("password", "", "SCRAM-SHA-512 password (with -ca)")
	_ = flags.Parse(os.Args[2:])

	opts := []kgo.Opt{kgo.SeedBrokers(*bootstrap)}
	if *ca != "" {
		security, err := saslSSL(*ca, *user, *password)
		if err != nil {
			fail(err)
		}
		opts = append(opts, security...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), phaseTimeout)
	defer cancel()
	var r result
	var err error
	if phase == "produce" {
		r, err = produce(ctx, opts, *topic, *records, *size, *rate)
	} else {
		r, err = consume(ctx, opts, *topic, *records)
	}
	if err != nil {
		fail(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

// saslSSL is the client's side of the bench's SASL_SSL listener: TLS checked against the
// given certificate, then SCRAM-SHA-512.
func saslSSL(caFile, user, password string) ([]kgo.Opt, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading -ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-ca %s holds no PEM certificate", caFile)
	}
	return []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()),
	}, nil
}

// produce sends n records of size bytes with acks=all (franz-go's default, idempotent) and
// the bench's kcat settings where franz-go has them (5 ms linger, batches up to 1 MB, no
// compression, the topic auto-created), and waits for every acknowledgement. With rate > 0 the i-th record is sent
// no earlier than i/rate seconds after the start, so its send-to-ack time is a latency, not
// the wait in the producer's queue.
func produce(ctx context.Context, opts []kgo.Opt, topic string, n, size, rate int) (result, error) {
	client, err := kgo.NewClient(append(opts,
		kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(), // as kcat's librdkafka: the topic is the broker's default
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		// franz-go compresses with snappy by default; kcat does not, and the bench's records
		// (one byte repeated) would shrink to nearly nothing on the wire, TLS cost included.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(100000),
	)...)
	if err != nil {
		return result{}, err
	}
	defer client.Close()
	value := make([]byte, size)
	for i := range value {
		value[i] = 'x'
	}
	latencies := make([]time.Duration, n)
	errs := make(chan error, 1)
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
		sent := time.Now()
		client.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			latencies[i] = time.Since(sent)
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := client.Flush(ctx); err != nil {
		return result{}, err
	}
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return result{}, fmt.Errorf("a record was not acknowledged: %w", err)
	default:
	}
	slices.Sort(latencies)
	return result{
		Phase: "produce", Records: n, Seconds: elapsed.Seconds(),
		RecordsPerS: float64(n) / elapsed.Seconds(),
		P50Ms:       millis(latencies[n/2]),
		P99Ms:       millis(latencies[n*99/100]),
	}, nil
}

// consume reads the topic from the beginning of every partition (no group) until n records
// have arrived. Its rate over the whole phase carries the setup of its connections, once per
// run: under SASL_SSL, with a few hundred thousand records, that setup was several percent of
// the phase, so the rate after the first records is reported beside it.
func consume(ctx context.Context, opts []kgo.Opt, topic string, n int) (result, error) {
	start := time.Now()
	client, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(10*time.Millisecond),
	)...)
	if err != nil {
		return result{}, err
	}
	defer client.Close()
	got := 0
	var first time.Time
	firstRecords := 0
	for got < n {
		fetches := client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return result{}, fmt.Errorf("%d of %d records read: %w", got, n, err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return result{}, fmt.Errorf("fetching %s partition %d: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		got += fetches.NumRecords()
		if firstRecords == 0 && got > 0 {
			first, firstRecords = time.Now(), got
		}
	}
	end := time.Now()
	elapsed := end.Sub(start)
	r := result{
		Phase: "consume", Records: got, Seconds: elapsed.Seconds(), RecordsPerS: float64(got) / elapsed.Seconds(),
		FirstRecordsMs: millis(first.Sub(start)),
	}
	if got > firstRecords {
		r.FetchRecordsPerS = float64(got-firstRecords) / end.Sub(first).Seconds()
	}
	return r, nil
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "keel-bench-franz:", err)
	os.Exit(1)
}
