package projections_test

// runCrashChild is replaced by the crash test's child entry point.
func runCrashChild() {}
