package configs

import "embed"

// Demo holds the sandbox data of `matterline demo`: demo/clio.json is the fixture
// of the in-process fake Clio (package clio/cliotest). Its caller +12175552171 is
// Ada Quist, matter 00101-Quist, responsible staff Felix Dubinsky (Clio user 501);
// docs/clio.md lists more demo numbers. It is sample data, not a real firm's.
//
//go:embed demo
var Demo embed.FS

// DemoClioFixture is the path of the fake Clio fixture inside Demo.
const DemoClioFixture = "demo/clio.json"

// DemoRules is the path of the demo's sample rules (`rules import` YAML) inside Demo.
const DemoRules = "demo/rules.yaml"
