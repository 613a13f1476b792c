"""One module per on-disk ERE format (CasRel, TPLinker, DocRED, PubTator); see ``readers``."""
