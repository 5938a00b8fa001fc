"""pandera verdicts: a built feature partition before it is published (`partition`), and a raw
source's landing days before any feature table reads them (`landing`)."""
