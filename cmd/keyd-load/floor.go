package main

// The floor: what a bare gin program serves on this machine for the route
// shape of keyd's validate, so that keyd is measured against the least any
// Go HTTP server of this kind could do rather than against its own /healthz.
//
//	keyd-load floor --addr 127.0.0.1:0 --answer-bytes 301
//
// serves, with gin in release mode and no middleware at all:
//
//	POST /v1/validate  reads the whole form body and answers 200 with a
//	                   fixed JSON body of --answer-bytes (validate's size)
//	GET  /healthz      answers {"status":"ok"}, as keyd does
//
// It prints "floor listening on http://ADDR" once it accepts connections.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

func floorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	size := fs.Int("answer-bytes", 300, "size of the validate answer's body")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 2 {
		return errors.New("--answer-bytes must be at least 2")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: floorHandler(*size)}
	fmt.Fprintf(stdout, "floor listening on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// floorAnswer is a JSON object of exactly size bytes.
func floorAnswer(size int) []byte {
	const head, tail = `{"valid":true,"pad":"`, `"}`
	if size < len(head)+len(tail) {
		return bytes.Repeat([]byte(" "), size-2) // "{" ... "}" would not fit; spaces do
	}
	return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
}

var floorBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func floorHandler(size int) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	answer := floorAnswer(size)
	r.POST("/v1/validate", func(c *gin.Context) {
		buf := floorBuffers.Get().(*bytes.Buffer)
		buf.Reset()
		_, err := buf.ReadFrom(c.Request.Body)
		floorBuffers.Put(buf)
		if err != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", answer)
	})
	r.GET("/healthz", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", []byte(`{"status":"ok"}`))
	})
	return r
}
