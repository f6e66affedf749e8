package cli

// WriteTestCert is writeCert for the external tests.
var WriteTestCert = writeCert
