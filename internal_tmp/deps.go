package deps

import (
	_ "github.com/creack/pty"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/goburrow/modbus"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/simonvetter/modbus"
	_ "go.bug.st/serial"
	_ "go.yaml.in/yaml/v3"
	_ "modernc.org/sqlite"
)
