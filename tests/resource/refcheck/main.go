// Reads image references, one JSON string a line, and prints "ok" or the parse error for
// each, as the kubelet's reference parser (distribution/reference.ParseNormalizedNamed) sees
// them: the oracle the image rule of validation.py is tested against.
package main

import (
	"bufio"
	_ "crypto/sha256" // go-digest verifies only the algorithms linked in, as the runtime's
	_ "crypto/sha512"
	"encoding/json"
	"fmt"
	"os"

	"github.com/distribution/reference"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var image string
		if err := json.Unmarshal(in.Bytes(), &image); err != nil {
			fmt.Println("not a JSON string:", err)
		} else if _, err := reference.ParseNormalizedNamed(image); err != nil {
			fmt.Println(err)
		} else {
			fmt.Println("ok")
		}
	}
}
