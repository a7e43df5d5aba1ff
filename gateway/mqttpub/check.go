package mqttpub

// CheckOptions validates opts as New would — broker URLs, TLS files that
// must load, a password file or variable that must be readable — without
// needing a journal or connecting. 'sterigate check' uses it.
func CheckOptions(opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if _, err := o.password(); err != nil {
		return err
	}
	_, err = o.tlsConfig()
	return err
}
