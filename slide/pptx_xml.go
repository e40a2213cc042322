package slide

// The OOXML parts of the PPTX. The fixed parts are the smallest that
// PowerPoint and LibreOffice accept; the slide, theme and core properties
// are templates whose user text goes through esc.

const xmlHeader = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n"

// Namespaces shared by the PresentationML parts.
const nsPML = `xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" ` +
	`xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" ` +
	`xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"`

const (
	ctPrefix = "application/vnd.openxmlformats-officedocument."
	relBase  = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
)

// The package parts that list the slides are templates of the slide
// numbers, 1 to n.
const contentTypesXMLTmpl = xmlHeader +
	`<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
	`<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>` +
	`<Default Extension="xml" ContentType="application/xml"/>` +
	`<Default Extension="png" ContentType="image/png"/>` +
	`<Override PartName="/ppt/presentation.xml" ContentType="` + ctPrefix + `presentationml.presentation.main+xml"/>` +
	`<Override PartName="/ppt/presProps.xml" ContentType="` + ctPrefix + `presentationml.presProps+xml"/>` +
	`<Override PartName="/ppt/viewProps.xml" ContentType="` + ctPrefix + `presentationml.viewProps+xml"/>` +
	`<Override PartName="/ppt/tableStyles.xml" ContentType="` + ctPrefix + `presentationml.tableStyles+xml"/>` +
	`<Override PartName="/ppt/slideMasters/slideMaster1.xml" ContentType="` + ctPrefix + `presentationml.slideMaster+xml"/>` +
	`<Override PartName="/ppt/slideLayouts/slideLayout1.xml" ContentType="` + ctPrefix + `presentationml.slideLayout+xml"/>` +
	`{{range .}}<Override PartName="/ppt/slides/slide{{.}}.xml" ContentType="` + ctPrefix + `presentationml.slide+xml"/>{{end}}` +
	`<Override PartName="/ppt/theme/theme1.xml" ContentType="` + ctPrefix + `theme+xml"/>` +
	`<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>` +
	`<Override PartName="/docProps/app.xml" ContentType="` + ctPrefix + `extended-properties+xml"/>` +
	`</Types>`

const rootRelsXML = xmlHeader +
	`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
	`<Relationship Id="rId1" Type="` + relBase + `officeDocument" Target="ppt/presentation.xml"/>` +
	`<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>` +
	`<Relationship Id="rId3" Type="` + relBase + `extended-properties" Target="docProps/app.xml"/>` +
	`</Relationships>`

const appXMLTmpl = xmlHeader +
	`<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties" ` +
	`xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">` +
	`<Application>genpipe</Application><Slides>{{len .}}</Slides><PresentationFormat>Widescreen</PresentationFormat>` +
	`</Properties>`

const coreXMLTmpl = xmlHeader +
	`<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" ` +
	`xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" ` +
	`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
	`<dc:title>{{esc .}}</dc:title><dc:creator>genpipe</dc:creator>` +
	`</cp:coreProperties>`

const presentationXMLTmpl = xmlHeader +
	`<p:presentation ` + nsPML + ` saveSubsetFonts="1">` +
	`<p:sldMasterIdLst><p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst>` +
	`<p:sldIdLst>{{range .}}<p:sldId id="{{add 255 .}}" r:id="rId{{add 100 .}}"/>{{end}}</p:sldIdLst>` +
	`<p:sldSz cx="12192000" cy="6858000"/>` +
	`<p:notesSz cx="6858000" cy="9144000"/>` +
	`</p:presentation>`

const presentationRelsXMLTmpl = xmlHeader +
	`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
	`<Relationship Id="rId1" Type="` + relBase + `slideMaster" Target="slideMasters/slideMaster1.xml"/>` +
	`{{range .}}<Relationship Id="rId{{add 100 .}}" Type="` + relBase + `slide" Target="slides/slide{{.}}.xml"/>{{end}}` +
	`<Relationship Id="rId3" Type="` + relBase + `theme" Target="theme/theme1.xml"/>` +
	`<Relationship Id="rId4" Type="` + relBase + `presProps" Target="presProps.xml"/>` +
	`<Relationship Id="rId5" Type="` + relBase + `viewProps" Target="viewProps.xml"/>` +
	`<Relationship Id="rId6" Type="` + relBase + `tableStyles" Target="tableStyles.xml"/>` +
	`</Relationships>`

const presPropsXML = xmlHeader + `<p:presentationPr ` + nsPML + `/>`

const viewPropsXML = xmlHeader + `<p:viewPr ` + nsPML + `>` +
	`<p:normalViewPr><p:restoredLeft sz="15620"/><p:restoredTop sz="94660"/></p:normalViewPr>` +
	`<p:gridSpacing cx="76200" cy="76200"/></p:viewPr>`

const tableStylesXML = xmlHeader +
	`<a:tblStyleLst xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" ` +
	`def="{5C22544A-7EE6-4342-B048-85BDC9FD1C3A}"/>`

// emptyTree is the group properties every shape tree starts with.
const emptyTree = `<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr>` +
	`<p:grpSpPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/>` +
	`<a:chOff x="0" y="0"/><a:chExt cx="0" cy="0"/></a:xfrm></p:grpSpPr>`

const slideMasterXML = xmlHeader +
	`<p:sldMaster ` + nsPML + `>` +
	`<p:cSld><p:bg><p:bgRef idx="1001"><a:schemeClr val="bg1"/></p:bgRef></p:bg>` +
	`<p:spTree>` + emptyTree + `</p:spTree></p:cSld>` +
	`<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" ` +
	`accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" folHlink="folHlink"/>` +
	`<p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rId1"/></p:sldLayoutIdLst>` +
	`<p:txStyles>` +
	`<p:titleStyle><a:lvl1pPr><a:defRPr sz="4400"><a:solidFill><a:schemeClr val="tx1"/></a:solidFill>` +
	`<a:latin typeface="+mj-lt"/></a:defRPr></a:lvl1pPr></p:titleStyle>` +
	`<p:bodyStyle><a:lvl1pPr><a:defRPr sz="2000"><a:solidFill><a:schemeClr val="tx1"/></a:solidFill>` +
	`<a:latin typeface="+mn-lt"/></a:defRPr></a:lvl1pPr></p:bodyStyle>` +
	`<p:otherStyle><a:lvl1pPr><a:defRPr sz="1800"><a:solidFill><a:schemeClr val="tx1"/></a:solidFill>` +
	`<a:latin typeface="+mn-lt"/></a:defRPr></a:lvl1pPr></p:otherStyle>` +
	`</p:txStyles></p:sldMaster>`

const slideMasterRelsXML = xmlHeader +
	`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
	`<Relationship Id="rId1" Type="` + relBase + `slideLayout" Target="../slideLayouts/slideLayout1.xml"/>` +
	`<Relationship Id="rId2" Type="` + relBase + `theme" Target="../theme/theme1.xml"/>` +
	`</Relationships>`

const slideLayoutXML = xmlHeader +
	`<p:sldLayout ` + nsPML + ` type="blank" preserve="1">` +
	`<p:cSld name="Blank"><p:spTree>` + emptyTree + `</p:spTree></p:cSld>` +
	`<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>`

const slideLayoutRelsXML = xmlHeader +
	`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
	`<Relationship Id="rId1" Type="` + relBase + `slideMaster" Target="../slideMasters/slideMaster1.xml"/>` +
	`</Relationships>`

const slideRelsXML = xmlHeader +
	`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
	`<Relationship Id="rId1" Type="` + relBase + `slideLayout" Target="../slideLayouts/slideLayout1.xml"/>` +
	`<Relationship Id="rId2" Type="` + relBase + `image" Target="../media/image1.png"/>` +
	`</Relationships>`

// slideRelsNoPictureXML is for the slides that continue a description.
const slideRelsNoPictureXML = xmlHeader +
	`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
	`<Relationship Id="rId1" Type="` + relBase + `slideLayout" Target="../slideLayouts/slideLayout1.xml"/>` +
	`</Relationships>`

// slideXMLTmpl draws, back to front: the gradient background, the band
// (in the band layout), the picture,
// its frame (a separate unfilled rectangle, so a transparent picture shows
// the background), the rule, and the two text boxes.
const slideXMLTmpl = xmlHeader +
	`<p:sld ` + nsPML + `><p:cSld>` +
	`<p:bg><p:bgPr><a:gradFill rotWithShape="1"><a:gsLst>` +
	`<a:gs pos="0"><a:srgbClr val="{{.Top}}"/></a:gs><a:gs pos="100000"><a:srgbClr val="{{.Bottom}}"/></a:gs>` +
	`</a:gsLst><a:lin ang="5400000" scaled="0"/></a:gradFill><a:effectLst/></p:bgPr></p:bg>` +
	`<p:spTree>` + emptyTree +
	`{{with .Band}}<p:sp><p:nvSpPr><p:cNvPr id="7" name="Band"/><p:cNvSpPr/><p:nvPr/></p:nvSpPr>` +
	`<p:spPr>{{template "xfrm" .}}<a:prstGeom prst="rect"><a:avLst/></a:prstGeom>` +
	`<a:solidFill><a:srgbClr val="{{$.BandColor}}"/></a:solidFill><a:ln><a:noFill/></a:ln></p:spPr></p:sp>{{end}}` +
	`{{with .Picture}}<p:pic><p:nvPicPr><p:cNvPr id="2" name="Picture"/><p:cNvPicPr><a:picLocks noChangeAspect="1"/></p:cNvPicPr><p:nvPr/></p:nvPicPr>` +
	`<p:blipFill><a:blip r:embed="rId2"/><a:stretch><a:fillRect/></a:stretch></p:blipFill>` +
	`<p:spPr>{{template "xfrm" .}}<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr></p:pic>{{end}}` +
	`{{with .Frame}}<p:sp><p:nvSpPr><p:cNvPr id="3" name="Frame"/><p:cNvSpPr/><p:nvPr/></p:nvSpPr>` +
	`<p:spPr>{{template "xfrm" .}}<a:prstGeom prst="rect"><a:avLst/></a:prstGeom><a:noFill/>` +
	`<a:ln w="{{$.FrameW}}"><a:solidFill><a:srgbClr val="{{$.Accent}}"/></a:solidFill><a:miter lim="800000"/></a:ln></p:spPr></p:sp>{{end}}` +
	`{{$accent := .Accent}}{{with .Rule}}<p:sp><p:nvSpPr><p:cNvPr id="6" name="Rule"/><p:cNvSpPr/><p:nvPr/></p:nvSpPr>` +
	`<p:spPr>{{template "xfrm" .}}<a:prstGeom prst="rect"><a:avLst/></a:prstGeom>` +
	`<a:solidFill><a:srgbClr val="{{$accent}}"/></a:solidFill><a:ln><a:noFill/></a:ln></p:spPr></p:sp>{{end}}` +
	`{{with .Title}}{{template "text" .}}{{end}}{{range .Body}}{{template "text" .}}{{end}}` +
	`</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>` +
	`{{define "xfrm"}}<a:xfrm><a:off x="{{.X}}" y="{{.Y}}"/><a:ext cx="{{.W}}" cy="{{.H}}"/></a:xfrm>{{end}}` +
	// Zero insets put the text where the PNG has it; normAutofit lets the
	// viewer shrink it if its substitute font runs wider.
	`{{define "text"}}<p:sp><p:nvSpPr><p:cNvPr id="{{.ID}}" name="{{.Name}}"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr>` +
	`<p:spPr>{{template "xfrm" .Box}}<a:prstGeom prst="rect"><a:avLst/></a:prstGeom><a:noFill/></p:spPr>` +
	`<p:txBody><a:bodyPr wrap="square" lIns="0" tIns="0" rIns="0" bIns="0" anchor="t"><a:normAutofit/></a:bodyPr><a:lstStyle/>` +
	`{{$b := .}}{{range .Paragraphs}}<a:p><a:pPr{{if $b.Center}} algn="ctr"{{else if .RTL}} algn="r"{{end}}{{if .RTL}} rtl="1"{{end}}><a:lnSpc><a:spcPct val="{{$b.LineSpace}}"/></a:lnSpc></a:pPr>` +
	`{{if .Text}}<a:r>{{template "rpr" .}}<a:t>{{esc .Text}}</a:t></a:r>{{end}}` +
	`<a:endParaRPr sz="{{$b.Size}}"/></a:p>{{end}}</p:txBody></p:sp>{{end}}` +
	// The east-Asian and complex-script typefaces name the fonts the
	// slide's PNG and PDF use for those scripts, so that PowerPoint and
	// LibreOffice pick them (or their own fallback) instead of boxes.
	`{{define "rpr"}}{{$b := .Box}}<a:rPr sz="{{$b.Size}}"{{if $b.Bold}} b="1"{{end}}{{if $b.SmallCaps}} cap="small"{{end}} dirty="0">` +
	`<a:solidFill><a:srgbClr val="{{$b.Color}}"/></a:solidFill>` +
	`<a:latin typeface="{{$b.Typeface}}"/><a:ea typeface="{{.EA}}"/><a:cs typeface="{{.CS}}"/></a:rPr>{{end}}`

// themeXMLTmpl is a complete theme: PowerPoint refuses one without all
// three entries of each format-scheme list.
const themeXMLTmpl = xmlHeader +
	`<a:theme xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" name="genpipe">` +
	`<a:themeElements>` +
	`<a:clrScheme name="genpipe">` +
	`<a:dk1><a:srgbClr val="{{.Dark}}"/></a:dk1><a:lt1><a:srgbClr val="{{.Light}}"/></a:lt1>` +
	`<a:dk2><a:srgbClr val="{{.Dark2}}"/></a:dk2><a:lt2><a:srgbClr val="{{.Light2}}"/></a:lt2>` +
	`<a:accent1><a:srgbClr val="{{.Accent}}"/></a:accent1><a:accent2><a:srgbClr val="{{.Accent2}}"/></a:accent2>` +
	`<a:accent3><a:srgbClr val="A5A5A5"/></a:accent3><a:accent4><a:srgbClr val="FFC000"/></a:accent4>` +
	`<a:accent5><a:srgbClr val="5B9BD5"/></a:accent5><a:accent6><a:srgbClr val="70AD47"/></a:accent6>` +
	`<a:hlink><a:srgbClr val="0563C1"/></a:hlink><a:folHlink><a:srgbClr val="954F72"/></a:folHlink>` +
	`</a:clrScheme>` +
	`<a:fontScheme name="genpipe">` +
	`<a:majorFont><a:latin typeface="{{esc .Major}}"/><a:ea typeface="{{esc .EA}}"/><a:cs typeface="{{esc .CS}}"/></a:majorFont>` +
	`<a:minorFont><a:latin typeface="{{esc .Minor}}"/><a:ea typeface="{{esc .EA}}"/><a:cs typeface="{{esc .CS}}"/></a:minorFont>` +
	`</a:fontScheme>` +
	`<a:fmtScheme name="genpipe">` +
	`<a:fillStyleLst>` +
	`<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>` +
	`<a:solidFill><a:schemeClr val="phClr"><a:tint val="50000"/></a:schemeClr></a:solidFill>` +
	`<a:solidFill><a:schemeClr val="phClr"><a:shade val="80000"/></a:schemeClr></a:solidFill>` +
	`</a:fillStyleLst>` +
	`<a:lnStyleLst>` +
	`<a:ln w="6350"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln>` +
	`<a:ln w="12700"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln>` +
	`<a:ln w="19050"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln>` +
	`</a:lnStyleLst>` +
	`<a:effectStyleLst>` +
	`<a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle>` +
	`<a:effectStyle><a:effectLst/></a:effectStyle>` +
	`</a:effectStyleLst>` +
	`<a:bgFillStyleLst>` +
	`<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>` +
	`<a:solidFill><a:schemeClr val="phClr"><a:tint val="95000"/></a:schemeClr></a:solidFill>` +
	`<a:solidFill><a:schemeClr val="phClr"><a:shade val="90000"/></a:schemeClr></a:solidFill>` +
	`</a:bgFillStyleLst>` +
	`</a:fmtScheme>` +
	`</a:themeElements><a:objectDefaults/><a:extraClrSchemeLst/></a:theme>`
