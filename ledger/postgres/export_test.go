package postgres

// ReadPageSQL lets plan tests explain the page read.
const ReadPageSQL = readPageSQL
