// The gorilla/websocket server of the end-to-end benchmark's ingest scenario: the Go
// reference row (one OS thread: GOMAXPROCS=1, set by server.py). It speaks the
// harness's protocol as server.py does: prints READY {"port", "pid"} once it listens,
// then, per connection, counts the messages read in a window (warmup seconds, then
// duration seconds) and prints RESULT {"conn", "count", "elapsed"}. Messages are read
// with NextReader into one reused buffer (no allocation per message), gorilla's
// fastest read; echo mode sends each message back (ReadMessage + WriteMessage).
// Compression and pings are off (gorilla's defaults). Built offline by server.py
// from Debian's golang-github-gorilla-websocket-dev.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const maxMessage = 4 * 1024 * 1024

var (
	mode     = flag.String("mode", "ingest", "ingest or echo")
	warmup   = flag.Float64("warmup", 0.5, "seconds before counting")
	duration = flag.Float64("duration", 2.0, "seconds counted")
	out      sync.Mutex
	seq      int64
	upgrader = websocket.Upgrader{
		ReadBufferSize:  16384,
		WriteBufferSize: 16384,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
)

func emit(tag string, data map[string]interface{}) {
	line, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	out.Lock()
	defer out.Unlock()
	fmt.Fprintf(os.Stdout, "%s %s\n", tag, line)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// meter reports the count of one connection's window, taken by timers (the reading
// loop only adds to the counter).
func meter(id int64, count *int64) {
	time.Sleep(seconds(*warmup))
	c0, t0 := atomic.LoadInt64(count), time.Now()
	time.Sleep(seconds(*duration))
	c1, t1 := atomic.LoadInt64(count), time.Now()
	emit("RESULT", map[string]interface{}{
		"conn": id, "count": c1 - c0, "elapsed": t1.Sub(t0).Seconds(),
	})
}

func ingest(conn *websocket.Conn) {
	var count int64
	go meter(atomic.AddInt64(&seq, 1), &count)
	buf := make([]byte, 65536)
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			return
		}
		for {
			if _, err := r.Read(buf); err != nil {
				if err != io.EOF {
					return
				}
				break
			}
		}
		atomic.AddInt64(&count, 1)
	}
}

func echo(conn *websocket.Conn) {
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(kind, data); err != nil {
			return
		}
	}
}

func handle(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetReadLimit(maxMessage)
	if *mode == "echo" {
		echo(conn)
	} else {
		ingest(conn)
	}
}

func main() {
	flag.Parse()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	emit("READY", map[string]interface{}{
		"port": listener.Addr().(*net.TCPAddr).Port, "pid": os.Getpid(),
	})
	panic(http.Serve(listener, http.HandlerFunc(handle)))
}
