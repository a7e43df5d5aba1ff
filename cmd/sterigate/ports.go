package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"go.bug.st/serial/enumerator"
)

// cmdPorts lists the serial ports with their USB identity, so a
// commissioning engineer can write serial.usb {vid, pid, serial} into the
// config and have the port found again after the adapter is replugged.
func cmdPorts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ports", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate ports\n\nLists serial ports with USB VID:PID, serial number and product, and the stable /dev/serial/by-id names.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usageError{fmt.Sprintf("ports: unexpected argument %q", fs.Arg(0))}
	}
	list := func() ([]*enumerator.PortDetails, error) {
		// enumerator.All: probe every USB device for its product string
		// (needed on macOS and Windows; Linux reads sysfs anyway).
		return enumerator.GetDetailedPortsList(enumerator.All)
	}
	return listSerialPorts(stdout, list, byIDLinks("/dev/serial/by-id"))
}

// byIDLinks maps device nodes to their udev /dev/serial/by-id names, which
// survive replugging and renumbering (ttyUSB0 ↔ ttyUSB1).
func byIDLinks(dir string) map[string]string {
	links := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return links
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if target, err := filepath.EvalSymlinks(p); err == nil {
			links[target] = p
		}
	}
	return links
}

func listSerialPorts(w io.Writer, list func() ([]*enumerator.PortDetails, error), byID map[string]string) error {
	ports, err := list()
	if err != nil {
		return fmt.Errorf("ports: %w", err)
	}
	var named []*enumerator.PortDetails
	for _, p := range ports {
		if p.Name != "" { // the enumerator returns empty entries for nodes without sysfs details
			named = append(named, p)
		}
	}
	sort.Slice(named, func(i, j int) bool { return named[i].Name < named[j].Name })
	if len(named) == 0 {
		fmt.Fprintln(w, "No serial ports found.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PORT\tUSB VID:PID\tSERIAL\tPRODUCT\tSTABLE NAME")
		for _, p := range named {
			id, serialNo, product := "-", "-", "-"
			if p.IsUSB {
				id = p.VID + ":" + p.PID
				serialNo = orDash(p.SerialNumber)
				product = orDash(p.Product)
				if p.Manufacturer != "" && product != "-" {
					product = p.Manufacturer + " " + product
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, id, serialNo, product, orDash(byID[p.Name]))
		}
		tw.Flush()
		fmt.Fprintln(w, "\nFor a USB adapter, put vid, pid and serial under serial.usb in the config: the port is then found again if it comes back under another name.")
	}
	fmt.Fprintln(w, "Pseudo-terminals (the simulator's virtual ports, socat pairs) are never listed: pass their path to --rtu or serial.port directly.")
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
