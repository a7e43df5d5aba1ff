package mqttpub

// CheckOptions validates opts as New would — broker URLs, TLS files that
// must load, a password file or variable that must be readable — without
// needing a journal or connecting.
func CheckOptions(opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if errs := CheckFiles(o); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// CheckFiles reports every secret and TLS file (or variable) of opts that
// cannot be used, each as a *FileError: 'sterigate check' and 'run' point
// at the config line of each.
func CheckFiles(opts Options) []error {
	var errs []error
	if _, err := opts.password(); err != nil {
		errs = append(errs, err)
	}
	if _, err := opts.tlsConfig(); err != nil {
		errs = append(errs, err)
	}
	return errs
}
